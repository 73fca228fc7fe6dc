"""Agent environments through the real services: the env service runs the example agents
(Python with the `openai` client, Node.js with fetch) in the bwrap sandbox against a
captured session of a real policy service, and verifies their answers with the math
environment.

The policy is the tiny tool-calling model (testkit.tool_model: Qwen's chat template, so
tools render). What the agent printed is compared with what the policy service recorded
for its last call; a SIGKILLed agent leaves the calls it made in Redis.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
import uuid
from pathlib import Path

import grpc
import pytest
import redis

from outrider.proto.v1 import env_pb2
from outrider.transport.capture import CaptureStore
from testkit.policy import PolicyServerThread, policy_config
from testkit.tool_model import MODEL, build_tool_model

pytestmark = pytest.mark.sandbox
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "envs"
SLOW_AGENT = """
import os, sys, time
from openai import OpenAI
OpenAI().chat.completions.create(model="", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
print("one call made", file=sys.stderr, flush=True)
time.sleep(120)
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory, any_redis_url):
    prefix = f"test-agent-{uuid.uuid4().hex[:8]}"
    cfg = policy_config("hf", model=str(build_tool_model(tmp_path_factory)), served_model_name=MODEL,
                        capture={"redis_url": any_redis_url, "prefix": prefix})
    client = redis.Redis.from_url(any_redis_url)
    with PolicyServerThread(cfg) as server:
        yield server, CaptureStore(client, prefix)
    client.close()


@pytest.fixture
def slow_agent_spec(tmp_path):
    # The agent's folder must be readable by the sandbox's own uid: not under pytest's 0700 tmp.
    folder = Path(tempfile.mkdtemp(prefix="outrider-slow-agent-"))
    folder.chmod(0o755)
    (folder / "agent.py").write_text(SLOW_AGENT)
    marker = f"marker-{uuid.uuid4().hex}"
    spec = tmp_path / "slow.yaml"
    spec.write_text(f"name: slow-agent\nagent:\n  command: [python3, /agent/agent.py, {marker}]\n"
                    f"  directory: {folder}\n  tasks_from: math\n  host_python_packages: true\n")
    yield spec, marker
    shutil.rmtree(folder, ignore_errors=True)


async def started(start_env_service, policy, *spec_files):
    server, _ = policy
    return await start_env_service(spec_files=[str(p) for p in spec_files],
                                   agent_gateway=f"127.0.0.1:{server.server.http_port}")


def shareable(path: Path) -> None:
    """The sandbox's unprivileged uid must read the example folder (a checkout under /root is not)."""
    for folder in [path, *path.parents]:
        if not os.access(folder, os.R_OK | os.X_OK):
            pytest.skip(f"{folder} is not readable by other users; agent folders must be")


@pytest.mark.parametrize("example", ["calculator-agent", "calculator-agent-node"])
async def test_an_example_agent_plays_and_is_verified(start_env_service, policy, example):
    if example.endswith("node") and shutil.which("node") is None:
        pytest.skip("node is not installed (the Node.js agent needs it)")
    shareable(EXAMPLES.parent / "agents" / "calculator")
    _, store = policy
    _, stub = await started(start_env_service, policy, EXAMPLES / f"{example}.yaml")
    [task] = (await stub.ListTasks(env_pb2.ListTasksRequest(env=example, limit=1))).tasks
    assert task.env == example
    session = store.open()
    reply = await stub.RunAgent(env_pb2.RunAgentRequest(env=example, task_id=task.id, seed=1, session_id=session,
                                                        model=MODEL), timeout=300)
    assert reply.outcome == env_pb2.AGENT_OUTCOME_OK, (reply.message, reply.stderr_tail)
    assert reply.HasField("reward") and reply.reward in (0.0, 1.0)
    assert any(m.role == "user" and m.content for m in reply.task_messages)
    calls = store.calls(session)
    assert 1 <= len(calls) <= 3  # AGENT_MAX_CALLS in the spec
    assert reply.output == calls[-1].reply_content.strip()


async def test_a_killed_agent_leaves_its_calls_and_is_an_infrastructure_failure(start_env_service, policy,
                                                                                slow_agent_spec):
    import asyncio

    spec, marker = slow_agent_spec
    _, store = policy
    _, stub = await started(start_env_service, policy, spec)
    [task] = (await stub.ListTasks(env_pb2.ListTasksRequest(env="slow-agent", limit=1))).tasks
    session = store.open()
    running = asyncio.ensure_future(stub.RunAgent(env_pb2.RunAgentRequest(
        env="slow-agent", task_id=task.id, session_id=session), timeout=300))
    deadline = time.monotonic() + 120
    while not store.calls(session):
        assert not running.done(), f"the agent ended before its first call: {running.result()}"
        assert time.monotonic() < deadline, "the agent made no call in 120 s"
        await asyncio.sleep(0.2)
    # The agent itself (not bwrap or the forwarder, whose command lines end with its argv too).
    [pid] = [int(p) for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).split("\0")[1:3] == ["/agent/agent.py", marker]]
    os.kill(pid, signal.SIGKILL)
    reply = await running
    assert reply.outcome == env_pb2.AGENT_OUTCOME_KILLED and "signal 9" in reply.message
    assert not reply.HasField("reward") and reply.output == ""
    assert len(store.calls(session)) == 1


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


async def test_agent_environments_refuse_what_they_cannot_do(start_env_service, policy, slow_agent_spec):
    spec, _ = slow_agent_spec
    _, stub = await started(start_env_service, policy, spec)
    with pytest.raises(grpc.aio.AioRpcError) as session:
        await stub.CreateSession(env_pb2.CreateSessionRequest(env="slow-agent", task_id="x"))
    assert session.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "RunAgent" in session.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as register:
        await stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=env_pb2.EnvSpec(
            name="mine", agent=env_pb2.AgentProgram(command=["python3", "-c", "1"], tasks_from="math"))))
    assert register.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "spec_files" in register.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as plain:
        await stub.RunAgent(env_pb2.RunAgentRequest(env="math", task_id="x", session_id="s" * 22))
    assert plain.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "CreateSession" in plain.value.details()
    _, no_gateway = await start_env_service(spec_files=[str(spec)])
    with pytest.raises(grpc.aio.AioRpcError) as gateway:
        await no_gateway.RunAgent(env_pb2.RunAgentRequest(env="slow-agent", task_id="x", session_id="s" * 22))
    assert gateway.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "agent_gateway" in gateway.value.details()

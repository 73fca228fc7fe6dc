"""Agent environments through the real services: the env service runs the example agents
(Python with the `openai` client, Node.js with fetch) in the bwrap sandbox against a
captured session of a real policy service, and verifies their answers with the math
environment.

The policy is the tiny tool-calling model (testkit.tool_model: Qwen's chat template, so
tools render). What the agent printed is compared with what the policy service recorded
for its last call; a SIGKILLed agent leaves the calls it made in Redis.
"""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def agent_spec(tmp_path, name: str, code: str):
    """A spec file of an agent environment `name` running `code`; yields (spec, marker), the
    marker being the agent's last argument (to find its process)."""
    # The agent's folder must be readable by the sandbox's own uid: not under pytest's 0700 tmp.
    folder = Path(tempfile.mkdtemp(prefix=f"outrider-{name}-"))
    folder.chmod(0o755)
    (folder / "agent.py").write_text(code)
    marker = f"marker-{uuid.uuid4().hex}"
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(f"name: {name}\nagent:\n  command: [python3, /agent/agent.py, {marker}]\n"
                    f"  directory: {folder}\n  tasks_from: math\n  host_python_packages: true\n")
    try:
        yield spec, marker
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def slow_agent_spec(tmp_path):
    with agent_spec(tmp_path, "slow-agent", SLOW_AGENT) as made:
        yield made


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


MIXED_AGENT = """
import json, os, sys, time
from openai import OpenAI
seed = json.loads(os.environ["OUTRIDER_TASK"])["seed"]
reply = OpenAI().chat.completions.create(model="", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
if seed % 100 == 0:  # waits to be killed
    print("one call made", file=sys.stderr, flush=True)
    time.sleep(120)
if seed % 100 == 1:  # breaks on its own
    sys.exit(3)
print("Answer: 42")
"""


@pytest.fixture
def mixed_agent_spec(tmp_path):
    with agent_spec(tmp_path, "mixed-agent", MIXED_AGENT) as made:
        yield made


@pytest.mark.parametrize("failure_reward", [None, -1.0])
async def test_a_group_keeps_what_each_agent_run_was(start_env_service, policy, mixed_agent_spec, failure_reward):
    """Three agents of one group: killed (infrastructure: left out), exit 3 (the agent's own
    failure: left out, or trained with rollout.agents.failure_reward), and a verified answer."""
    import asyncio

    from outrider.clients.env import EnvClient
    from outrider.config.rollout import RolloutConfig
    from outrider.proto.v1.trajectory_pb2 import (
        INFRA_FAILURE_AGENT_FAILED,
        INFRA_FAILURE_ENV_ERROR,
        INFRA_FAILURE_NONE,
    )
    from outrider.rollout.agents import AgentPlayer
    from outrider.rollout.episodes import build_group

    spec, marker = mixed_agent_spec
    _, store = policy
    built, stub = await started(start_env_service, policy, spec)
    [task] = (await stub.ListTasks(env_pb2.ListTasksRequest(env="mixed-agent", limit=1, include_reference=True))).tasks
    config = RolloutConfig(group_size=3, agents={"failure_reward": failure_reward})
    with EnvClient(f"127.0.0.1:{built.port}") as env:
        player = AgentPlayer(env, store, config, MODEL)
        seed = 100 if failure_reward is None else 200  # sessions of the two runs apart (labels name seeds)
        playing = asyncio.ensure_future(asyncio.to_thread(player.play, task, seed=seed))
        deadline = time.monotonic() + 120
        while not _session_calls(store, f"mixed-agent/{task.id}/seed-{seed}"):  # episode 0 made its call
            assert time.monotonic() < deadline and not playing.done(), "the waiting agent never made its call"
            await asyncio.sleep(0.2)
        [pid] = [int(p) for p in os.listdir("/proc") if p.isdigit()
                 and _cmdline(p).split("\0")[1:3] == ["/agent/agent.py", marker] and f'"seed": {seed}' in _environ(p)]
        os.kill(pid, signal.SIGKILL)
        episodes = await playing
    killed, broken, answered = episodes
    assert killed.failure == INFRA_FAILURE_ENV_ERROR and "signal 9" in killed.error
    assert answered.error == "" and answered.turns[-1].env_reward == (1.0 if task.reference == "42" else 0.0)
    group = build_group(task, "g", episodes).group
    by_id = {t.trajectory_id: t for t in group.trajectories}
    assert by_id["g/0"].infra_failure == INFRA_FAILURE_ENV_ERROR
    if failure_reward is None:
        assert broken.failure == INFRA_FAILURE_AGENT_FAILED and "status 3" in broken.error
        assert by_id["g/1"].infra_failure == INFRA_FAILURE_AGENT_FAILED
    else:
        assert broken.error == "" and broken.turns[-1].env_reward == -1.0
        assert by_id["g/1"].infra_failure == INFRA_FAILURE_NONE
        assert by_id["g/1"].status.source == "agent" and "status 3" in by_id["g/1"].status.message
    assert by_id["g/2"].infra_failure == INFRA_FAILURE_NONE and by_id["g/2"].status.code == 1
    # Every episode made its one call before it ended, and each became one sequence.
    assert all(len(t.turns) == 1 and sum(t.loss_mask) > 0 for t in group.trajectories)


def _environ(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _session_calls(store: CaptureStore, label: str) -> int:
    """Calls recorded in the session that has `label` (the player opens it; we only look)."""
    for key in store.client.scan_iter(f"{store.prefix}:*:meta"):
        if store.client.hget(key, "label") == label.encode():
            return store.client.llen(key.decode().removesuffix(":meta") + ":calls")
    return 0

"""A remote environment: the `counter` example server runs as its own process on its own
port, is registered as kind `remote`, and is played through the env service; when it goes
down, calls answer UNAVAILABLE naming the environment and the service keeps serving."""

from __future__ import annotations


import grpc
import pytest

from outrider.proto.v1 import env_pb2
from testkit.example_servers import example_server

pytestmark = pytest.mark.sandbox  # the env service it talks through builds a sandbox


@pytest.fixture
def counter_server():
    """`python -m outrider.envs.examples.remote_counter --port 0` as a child process."""
    with example_server("outrider.envs.examples.remote_counter") as process:
        yield process


def remote_spec(name: str, port: int, remote_env: str = "counter") -> env_pb2.EnvSpec:
    return env_pb2.EnvSpec(
        name=name,
        version="1.0.0",
        remote=env_pb2.RemoteEndpoint(address=f"127.0.0.1:{port}", timeout_s=5, env=remote_env),
        max_turns=12,
    )


async def step(stub, session_id: str, text: str) -> env_pb2.StepResponse:
    return await stub.Step(env_pb2.StepRequest(session_id=session_id, action=env_pb2.Action(text=text)))


async def test_remote_env_is_played_through_the_env_service(start_env_service, counter_server):
    _, stub = await start_env_service()
    stored = (await stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=remote_spec("counter-proxy", counter_server.port)))).spec
    assert stored.WhichOneof("kind") == "remote"
    assert "counter-proxy" in [spec.name for spec in (await stub.ListEnvs(env_pb2.ListEnvsRequest())).envs]

    tasks = await stub.ListTasks(env_pb2.ListTasksRequest(env="counter-proxy", split="train", include_reference=True))
    assert tasks.total == 10
    assert tasks.tasks[2].env == "counter-proxy"  # renamed to the registered name
    assert (tasks.tasks[2].id, tasks.tasks[2].reference) == ("train-2", "5")  # N = 3 + 2 % 5

    session = await stub.CreateSession(env_pb2.CreateSessionRequest(env="counter-proxy", task_id="train-2"))
    assert "Count from 1 to 5" in session.observation.messages[0].content
    wrong = await step(stub, session.session_id, "7")
    assert wrong.reward == 0.0 and "Expected 1" in wrong.observation.messages[0].content
    replies = [await step(stub, session.session_id, str(n)) for n in range(1, 6)]
    assert [r.reward for r in replies] == [0.2] * 5  # 1/N each
    assert replies[-1].done and replies[-1].info.solved and replies[-1].turn == 6
    summary = await stub.CloseSession(env_pb2.CloseSessionRequest(session_id=session.session_id))
    assert summary.turns == 6 and summary.solved
    assert summary.total_reward == pytest.approx(1.0, abs=1e-12)  # five float additions of 0.2


async def test_remote_down_is_unavailable_with_the_env_name(start_env_service, counter_server):
    _, stub = await start_env_service()
    await stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=remote_spec("counter", counter_server.port)))
    session = await stub.CreateSession(env_pb2.CreateSessionRequest(env="counter", task_id="train-0"))
    assert (await step(stub, session.session_id, "1")).reward == 1 / 3

    counter_server.terminate()
    counter_server.wait(10)

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await step(stub, session.session_id, "2")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "remote environment 'counter'" in info.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateSession(env_pb2.CreateSessionRequest(env="counter", task_id="train-1"))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "'counter'" in info.value.details() and f"127.0.0.1:{counter_server.port}" in info.value.details()

    # The service keeps serving everything else.
    local = await stub.CreateSession(env_pb2.CreateSessionRequest(env="math", task_id="train-00000"))
    assert local.session_id


async def test_remote_that_never_ran_is_unavailable(start_env_service):
    import socket

    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _, stub = await start_env_service()
    await stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=remote_spec("ghost", port)))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateSession(env_pb2.CreateSessionRequest(env="ghost", task_id="train-0"))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "remote environment 'ghost'" in info.value.details()


async def test_remote_errors_keep_their_code_and_name_the_env(start_env_service, counter_server):
    _, stub = await start_env_service()
    await stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=remote_spec("counter", counter_server.port)))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateSession(env_pb2.CreateSessionRequest(env="counter", task_id="train-99"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "remote environment 'counter'" in info.value.details() and "train-99" in info.value.details()

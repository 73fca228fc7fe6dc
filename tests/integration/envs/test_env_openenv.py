"""An OpenEnv environment (kind `openenv`) played through the real env service.

The server (`testkit.openenv_server`) is a small one written to OpenEnv's wire format,
on 127.0.0.1: one environment per WebSocket connection, one shared by its HTTP routes.
Its game, whose numbers the tests derive by hand: reset(seed, low=0, high=9) hides
`low + seed % (high - low + 1)`; a right guess gets reward 1 and done, a wrong one reward
0 and "higher"/"lower"; the third wrong guess ends the episode. "crash", "garbage",
"null" and "slow" make the server fail, answer non-JSON, send reward null, answer late.
"""

from __future__ import annotations

import asyncio
import json
import socket

import grpc
import pytest

from outrider.proto.v1 import env_pb2
from testkit.openenv_server import ToyServer

pytestmark = pytest.mark.sandbox  # the env service it talks through builds a sandbox


@pytest.fixture
def toy():
    server = ToyServer().start()
    yield server
    server.stop()


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spec(name: str, base_url: str, **endpoint) -> env_pb2.EnvSpec:
    fields = {
        "base_url": base_url,
        "timeout_s": 5,
        "action_field": "guess",
        "action_template_json": '{"style": "plain"}',
        "observation_field": "text",
        "seed_tasks": env_pb2.OpenEnvSeedTasks(train=3, test=2),
        **endpoint,
    }
    fields = {key: value for key, value in fields.items() if value is not None}
    top = {key: fields.pop(key) for key in ("max_turns",) if key in fields}
    return env_pb2.EnvSpec(name=name, openenv=env_pb2.OpenEnvEndpoint(**fields), **top)


async def register(stub, env_spec: env_pb2.EnvSpec) -> env_pb2.EnvSpec:
    return (await stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=env_spec))).spec


async def create(stub, env: str, task_id: str, seed: int = 0) -> env_pb2.CreateSessionResponse:
    return await stub.CreateSession(env_pb2.CreateSessionRequest(env=env, task_id=task_id, seed=seed))


async def step(stub, session_id: str, text: str) -> env_pb2.StepResponse:
    return await stub.Step(env_pb2.StepRequest(session_id=session_id, action=env_pb2.Action(text=text)))


def texts(observation: env_pb2.Observation) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in observation.messages]


async def test_an_openenv_server_is_played_over_its_websocket(start_env_service, toy):
    _, stub = await start_env_service()
    stored = await register(stub, spec("guess", toy.url, instructions="Reply with one integer.", solved_reward=1.0))
    assert stored.WhichOneof("kind") == "openenv" and stored.openenv.transport == "websocket"

    listed = await stub.ListTasks(env_pb2.ListTasksRequest(env="guess", split="test"))
    assert listed.total == 2 and [(t.id, t.env, t.preview) for t in listed.tasks] == [("test-00000", "guess", "seed 3"), ("test-00001", "guess", "seed 4")]

    # train-00002: seed 2, target 0 + 2 % 10 = 2.
    session = await create(stub, "guess", "train-00002")
    assert texts(session.observation) == [("system", "Reply with one integer."), ("user", "Guess an integer from 0 to 9.")]
    first = await step(stub, session.session_id, "5")
    assert (first.reward, first.done, first.turn, texts(first.observation)) == (0.0, False, 1, [("user", "lower")])
    assert dict(first.info.metrics) == {"attempts": 1.0, "distance": 3.0}  # |5 - 2|
    second = await step(stub, session.session_id, "1")
    assert (second.reward, second.done, texts(second.observation)) == (0.0, False, [("user", "higher")])
    third = await step(stub, session.session_id, "2")
    assert (third.reward, third.done, third.truncated, third.turn, third.info.solved) == (1.0, True, False, 3, True)
    assert not third.observation.messages  # empty when done
    summary = await stub.CloseSession(env_pb2.CloseSessionRequest(session_id=session.session_id))
    assert (summary.turns, summary.total_reward, summary.solved) == (3, 1.0, True)
    assert toy.app.state.open_connections == []  # the connection went with the episode


async def test_websocket_sessions_are_independent_and_concurrent(start_env_service, toy):
    _, stub = await start_env_service()
    await register(stub, spec("guess", toy.url))
    # train-00000: target 0; test-00001: seed 3 + 1 = 4, target 4. Created together, stepped interleaved.
    a, b = await asyncio.gather(create(stub, "guess", "train-00000"), create(stub, "guess", "test-00001"))
    assert len(toy.app.state.open_connections) == 2
    b1 = await step(stub, b.session_id, "9")
    a1 = await step(stub, a.session_id, "0")
    b2 = await step(stub, b.session_id, "4")
    assert (texts(b1.observation), b1.reward) == ([("user", "lower")], 0.0)
    assert (a1.reward, a1.done, a1.info.solved) == (1.0, True, False)  # no solved_reward in this spec: never solved
    assert (b2.reward, b2.done, b2.turn) == (1.0, True, 2)


async def test_the_whole_observation_as_json_and_the_turn_limit(start_env_service, toy):
    _, stub = await start_env_service()
    await register(stub, spec("guess-json", toy.url, observation_field="", max_turns=2))
    session = await create(stub, "guess-json", "train-00001")  # target 1
    assert json.loads(session.observation.messages[0].content) == {"text": "Guess an integer from 0 to 9.", "attempt": 0}
    first = await step(stub, session.session_id, "7")
    assert json.loads(first.observation.messages[0].content) == {"text": "lower", "attempt": 1}
    second = await step(stub, session.session_id, "8")  # the game allows 3, the spec 2
    assert (second.reward, second.done, second.truncated, second.turn) == (0.0, True, True, 2)
    assert not second.observation.messages
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await step(stub, session.session_id, "1")
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_the_http_form_plays_one_episode_at_a_time_per_url(start_env_service, toy):
    _, stub = await start_env_service()
    tasks = [
        env_pb2.OpenEnvTask(id="wide", reset_json='{"low": 10, "high": 19, "seed": 5}'),  # target 10 + 5 % 10 = 15
        env_pb2.OpenEnvTask(id="free", reset_json='{"low": 0, "high": 99}'),  # target: the session's seed % 100
    ]
    await register(stub, spec("guess-http", toy.url, transport="http", seed_tasks=None, tasks=tasks))
    session = await create(stub, "guess-http", "wide")
    assert texts(session.observation) == [("user", "Guess an integer from 10 to 19.")]

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await create(stub, "guess-http", "free")
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "one episode at a time per base_url" in info.value.details() and session.session_id in info.value.details()

    replies = [await step(stub, session.session_id, guess) for guess in ("12", "17", "15")]
    assert [(texts(r.observation), r.reward, r.done) for r in replies] == [
        ([("user", "higher")], 0.0, False), ([("user", "lower")], 0.0, False), ([], 1.0, True),
    ]
    # Done let go of the URL: the next episode starts before the first is closed.
    nxt = await create(stub, "guess-http", "free", seed=42)
    win = await step(stub, nxt.session_id, "42")
    assert (win.reward, win.done) == (1.0, True)
    for s in (session, nxt):
        await stub.CloseSession(env_pb2.CloseSessionRequest(session_id=s.session_id))


@pytest.mark.parametrize("transport", ["websocket", "http"])
async def test_a_server_that_is_down_is_unavailable_naming_the_url(start_env_service, transport):
    _, stub = await start_env_service()
    url = f"http://127.0.0.1:{free_port()}"
    await register(stub, spec("guess", url, transport=transport))  # registration does not contact it
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await create(stub, "guess", "train-00000")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert f"OpenEnv environment 'guess' at {url} is unavailable" in info.value.details()


@pytest.mark.parametrize("transport", ["websocket", "http"])
async def test_environment_failures_are_errors_never_rewards(start_env_service, toy, transport):
    _, stub = await start_env_service()
    await register(stub, spec("guess", toy.url, transport=transport))
    where = f"OpenEnv environment 'guess' at {toy.url} failed the step"
    for guess, message in [("crash", "the environment crashed on purpose"), ("garbage", "not JSON: '<html>proxy error</html>'")]:
        session = await create(stub, "guess", "train-00000")
        reply = await step(stub, session.session_id, guess)
        assert reply.status.code == reply.status.ERROR and reply.done and not reply.HasField("reward")
        assert reply.status.message.startswith(where) and message in reply.status.message, reply.status.message
        assert reply.status.source == "env:guess" and reply.turn == 1
        summary = await stub.CloseSession(env_pb2.CloseSessionRequest(session_id=session.session_id))
        assert (summary.turns, summary.total_reward) == (1, 0.0)

    session = await create(stub, "guess", "train-00000")
    reply = await step(stub, session.session_id, "null")
    assert reply.status.code == reply.status.ERROR and not reply.HasField("reward")
    assert "broke the Step contract: reward: null in the reply (set openenv.null_reward_is_zero" in reply.status.message
    await stub.CloseSession(env_pb2.CloseSessionRequest(session_id=session.session_id))


async def test_a_null_reward_is_zero_only_when_the_spec_says_so(start_env_service, toy):
    _, stub = await start_env_service()
    await register(stub, spec("guess", toy.url, null_reward_is_zero=True))
    session = await create(stub, "guess", "train-00000")
    reply = await step(stub, session.session_id, "null")
    assert (reply.status.code, reply.reward, reply.done, texts(reply.observation)) == (reply.status.OK, 0.0, False, [("user", "no reward today")])


@pytest.mark.parametrize("transport", ["websocket", "http"])
async def test_requests_the_server_refuses_name_the_server_and_its_message(start_env_service, toy, transport):
    _, stub = await start_env_service()
    # No template: the action lacks `style`, which the server's action model requires.
    await register(stub, spec("no-style", toy.url, transport=transport, action_template_json=""))
    session = await create(stub, "no-style", "train-00000")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await step(stub, session.session_id, "3")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = info.value.details()
    assert f"OpenEnv environment 'no-style' at {toy.url} refused the step" in details and "style" in details and "GET /schema" in details
    with pytest.raises(grpc.aio.AioRpcError) as info:  # the connection was dropped with the error
        await step(stub, session.session_id, "3")
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "lost its connection" in info.value.details()
    await stub.CloseSession(env_pb2.CloseSessionRequest(session_id=session.session_id))

    # A reset the environment fails (low above high): INTERNAL with the server's message.
    bad = [env_pb2.OpenEnvTask(id="upside-down", reset_json='{"low": 5, "high": 1}')]
    await register(stub, spec("upside-down", toy.url, transport=transport, seed_tasks=None, tasks=bad))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await create(stub, "upside-down", "upside-down")
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert f"at {toy.url} failed to start task 'upside-down'" in info.value.details() and "low 5 is above high 1" in info.value.details()

    # An observation field the server does not send: INTERNAL naming the field.
    await register(stub, spec("no-hint", toy.url, transport=transport, observation_field="hint"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await create(stub, "no-hint", "train-00000")
    assert info.value.code() == grpc.StatusCode.INTERNAL and "has no field 'hint' (openenv.observation_field); it has: text, attempt" in info.value.details()

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await create(stub, "no-hint", "train-00003")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and "unknown task 'train-00003'" in info.value.details()


async def test_a_slow_server_is_deadline_exceeded_and_a_full_one_resource_exhausted(start_env_service):
    server = ToyServer(max_connections=1).start()
    try:
        _, stub = await start_env_service()
        await register(stub, spec("guess", server.url, timeout_s=0.5))
        session = await create(stub, "guess", "train-00000")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await create(stub, "guess", "train-00001")  # the server takes one connection
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "at capacity (1 of 1 sessions" in info.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await step(stub, session.session_id, "slow")
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert f"at {server.url} did not answer the step within 0.5 s" in info.value.details()
    finally:
        server.stop()


async def test_admission_refuses_a_base_url_as_it_refuses_a_remote_address(start_env_service):
    _, stub = await start_env_service()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await register(stub, spec("meta", "http://169.254.169.254:80"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "spec.openenv.base_url: 'http://169.254.169.254:80' is refused: 169.254.169.254 is a link-local address" in info.value.details()


# Starlette (so FastAPI, so OpenEnv's server) refuses a WebSocket upgrade to an unknown route with 403.
@pytest.mark.parametrize(("transport", "message"), [("websocket", "has no WebSocket endpoint /ws (HTTP 403)"), ("http", "has no POST /reset (HTTP 404)")])
async def test_a_base_url_that_is_not_the_servers_root_is_a_failed_precondition(start_env_service, toy, transport, message):
    _, stub = await start_env_service()
    await register(stub, spec("guess", f"{toy.url}/not-here", transport=transport))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await create(stub, "guess", "train-00000")
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"OpenEnv environment 'guess' at {toy.url}/not-here {message}" in info.value.details()

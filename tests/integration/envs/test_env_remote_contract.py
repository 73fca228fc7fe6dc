"""The Step contract, against a real remote environment that breaks it.

`ScriptedRemote` is a small EnvService served over loopback in the test process; each
task id names what its Step replies do wrong. It is registered with a real env service
as kind `remote` and played through it: a reply that says OK without a reward (or says
nothing) becomes status ERROR naming the remote and the field, done, no reward, counted;
and the rollout (real policy service, real env client) drops such episodes as
infrastructure failures, never training them with a reward of 0."""

from __future__ import annotations

import threading
import uuid
from concurrent import futures

import grpc
import pytest
from prometheus_client import REGISTRY

from outrider.proto.v1 import common_pb2, env_pb2, env_pb2_grpc

pytestmark = pytest.mark.sandbox  # the env service it talks through builds a sandbox

OK, ERROR = common_pb2.ItemStatus.OK, common_pb2.ItemStatus.ERROR


def _ok(reward: float | None = None, done: bool = False, **info) -> env_pb2.StepResponse:
    reply = env_pb2.StepResponse(done=done, status=common_pb2.ItemStatus(code=OK), info=env_pb2.StepInfo(**info))
    if reward is not None:
        reply.reward = reward
    if not done:
        reply.observation.messages.append(common_pb2.ChatMessage(role="user", content="go on"))
    return reply


# task id -> its Step replies, in order (the turn is filled in unless a script sets one).
SCRIPTS = {
    "good": [_ok(0.5), _ok(0.5, done=True)],
    "no-reward": [_ok()],
    "no-status": [env_pb2.StepResponse(reward=1.0, done=True)],
    "final-no-reward": [_ok(0.0), _ok(done=True)],
    "error-with-reward": [
        env_pb2.StepResponse(reward=0.3, status=common_pb2.ItemStatus(code=ERROR, message="disk full"))
    ],
    "undeclared-process-score": [_ok(0.0, process_score=0.5)],
    "over-max-reward": [_ok(0.75), _ok(0.75, done=True)],
    "wrong-turn": [env_pb2.StepResponse(reward=0.0, turn=7, status=common_pb2.ItemStatus(code=OK))],
    "no-session-id": [],  # CreateSession answers without a session id
}


class ScriptedRemote(env_pb2_grpc.EnvServiceServicer):
    def __init__(self):
        self.sessions: dict[str, list] = {}
        self.closed: list[str] = []
        self.lock = threading.Lock()

    def ListTasks(self, request, context):
        tasks = [common_pb2.Task(id=name, env=request.env, split="train", preview=f"script {name}") for name in SCRIPTS]
        return env_pb2.ListTasksResponse(tasks=tasks, total=len(tasks))

    def CreateSession(self, request, context):
        if request.task_id not in SCRIPTS:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown task {request.task_id!r}")
        if request.task_id == "no-session-id":
            return env_pb2.CreateSessionResponse()
        session_id = uuid.uuid4().hex
        with self.lock:
            self.sessions[session_id] = [request.task_id, 0]
        observation = env_pb2.Observation(messages=[common_pb2.ChatMessage(role="user", content="Say anything.")])
        return env_pb2.CreateSessionResponse(session_id=session_id, observation=observation)

    def Step(self, request, context):
        with self.lock:
            state = self.sessions[request.session_id]
            task, played = state
            state[1] += 1
        reply = env_pb2.StepResponse()
        reply.CopyFrom(SCRIPTS[task][played])
        reply.turn = reply.turn or played + 1
        return reply

    def CloseSession(self, request, context):
        with self.lock:
            self.sessions.pop(request.session_id)
            self.closed.append(request.session_id)
        return env_pb2.CloseSessionResponse()


@pytest.fixture(scope="module")
def scripted_remote():
    servicer = ScriptedRemote()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    env_pb2_grpc.add_EnvServiceServicer_to_server(servicer, server)
    servicer.port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer
    server.stop(0).wait()


def scripted_spec(port: int) -> env_pb2.EnvSpec:
    return env_pb2.EnvSpec(name="scripted", remote=env_pb2.RemoteEndpoint(address=f"127.0.0.1:{port}", timeout_s=5), max_turns=5)


def errors_counted(stage: str = "step") -> float:
    return REGISTRY.get_sample_value("outrider_env_errors_total", {"env": "scripted", "stage": stage}) or 0.0


async def _play(stub, task: str, turns: int) -> tuple[str, list[env_pb2.StepResponse]]:
    session = await stub.CreateSession(env_pb2.CreateSessionRequest(env="scripted", task_id=task))
    replies = []
    for _ in range(turns):
        replies.append(await stub.Step(env_pb2.StepRequest(session_id=session.session_id, action=env_pb2.Action(text="1"))))
    return session.session_id, replies


def _broken(reply: env_pb2.StepResponse, port: int, problem: str) -> None:
    assert reply.status.code == ERROR and reply.status.source == "env:scripted"
    assert reply.status.message.startswith(f"remote environment 'scripted' at 127.0.0.1:{port} broke the Step contract: {problem}"), reply.status.message
    assert not reply.HasField("reward")  # absent, never 0
    assert reply.done and not reply.observation.messages


async def test_ok_without_a_reward_is_an_error_naming_the_remote_and_the_field(start_env_service, scripted_remote):
    built, stub = await start_env_service()
    await stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=scripted_spec(scripted_remote.port)))
    before = errors_counted()
    session_id, (reply,) = await _play(stub, "no-reward", 1)
    _broken(reply, scripted_remote.port, "reward: absent with status OK")
    assert reply.turn == 1
    assert errors_counted() == before + 1
    record = built.core.sessions.get(session_id)
    assert (record.errors, record.total_reward, record.done) == (1, 0.0, True)
    # The episode is over: no further Step reaches the remote; closing still does.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Step(env_pb2.StepRequest(session_id=session_id, action=env_pb2.Action(text="2")))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    remote_ids = set(scripted_remote.sessions)
    await stub.CloseSession(env_pb2.CloseSessionRequest(session_id=session_id))
    assert len(remote_ids - set(scripted_remote.sessions)) == 1


@pytest.mark.parametrize(
    ("task", "turns", "problem"),
    [
        ("no-status", 1, "status: unset"),
        ("final-no-reward", 2, "reward: absent with status OK"),  # done=true does not excuse it
        ("undeclared-process-score", 1, "info.process_score: given, but the spec does not declare process signals"),
        ("over-max-reward", 2, "reward: the episode's rewards sum to 1.5, above spec.reward.max_reward (1)"),
        ("wrong-turn", 1, "turn: 7, expected 1"),
    ],
)
async def test_every_broken_reply_becomes_an_error(start_env_service, scripted_remote, task, turns, problem):
    _, stub = await start_env_service()
    await stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=scripted_spec(scripted_remote.port)))
    session_id, replies = await _play(stub, task, turns)
    assert all(r.status.code == OK and r.HasField("reward") for r in replies[:-1])
    _broken(replies[-1], scripted_remote.port, problem)
    assert replies[-1].turn == turns
    summary = await stub.CloseSession(env_pb2.CloseSessionRequest(session_id=session_id))
    assert summary.total_reward == sum(r.reward for r in replies[:-1])


async def test_a_remote_error_stays_an_error_and_loses_its_reward(start_env_service, scripted_remote):
    _, stub = await start_env_service()
    await stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=scripted_spec(scripted_remote.port)))
    _, (reply,) = await _play(stub, "error-with-reward", 1)
    assert (reply.status.code, reply.status.message, reply.status.source) == (ERROR, "disk full", "env:scripted")
    assert not reply.HasField("reward") and reply.done  # a failed step has no reward and ends the episode


async def test_a_remote_that_keeps_the_contract_is_passed_through(start_env_service, scripted_remote):
    _, stub = await start_env_service()
    await stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=scripted_spec(scripted_remote.port)))
    session_id, replies = await _play(stub, "good", 2)
    assert [(r.status.code, r.reward, r.done, r.turn) for r in replies] == [(OK, 0.5, False, 1), (OK, 0.5, True, 2)]
    assert (await stub.CloseSession(env_pb2.CloseSessionRequest(session_id=session_id))).total_reward == 1.0


async def test_a_create_session_reply_without_a_session_id_is_internal(start_env_service, scripted_remote):
    _, stub = await start_env_service()
    await stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=scripted_spec(scripted_remote.port)))
    before = errors_counted("remote")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateSession(env_pb2.CreateSessionRequest(env="scripted", task_id="no-session-id"))
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert info.value.details() == (
        f"remote environment 'scripted' at 127.0.0.1:{scripted_remote.port} broke the CreateSession contract: session_id: empty"
    )
    assert errors_counted("remote") == before + 1


# --- the rollout: real policy service (tiny random model), real env service, real clients ----


@pytest.fixture(scope="module")
def rollout_services(tmp_path_factory, scripted_remote):
    from outrider.clients.env import EnvClient
    from outrider.clients.policy import PolicyClient
    from outrider.config import parse_config
    from outrider.stack import LocalStack

    root = tmp_path_factory.mktemp("remote-contract")
    run = parse_config(
        {
            "name": "remote-contract",
            "output_dir": str(root),
            "stack": {"services": ["policy", "env"]},
            "policy": {"backend": "hf", "model": "tiny-random", "dtype": "float32", "http_port": None},
            "env": {"builtin_envs": ["math"]},
        }
    )
    with LocalStack(run, root / "stack") as stack:
        addresses = stack.addresses()
        with PolicyClient(addresses["policy"], credentials=stack.credentials()) as policy, EnvClient(addresses["env"], credentials=stack.credentials("admin")) as env:  # it registers an env
            env.register(scripted_spec(scripted_remote.port))
            yield policy, env


@pytest.mark.slow
@pytest.mark.parametrize(("task", "played"), [("no-reward", 1), ("final-no-reward", 2)])
def test_rollout_fails_episodes_whose_remote_gives_no_reward(rollout_services, task, played):
    from outrider.config import parse_config
    from outrider.learner.batch import build_batch
    from outrider.proto.v1.trajectory_pb2 import INFRA_FAILURE_ENV_ERROR
    from outrider.rollout.episodes import GroupPlayer, build_group
    from outrider.rollout.rewards import assign_rewards

    policy, env = rollout_services
    rollout = parse_config({"rollout": {"group_size": 3, "sampling": {"max_tokens": 4}}}).rollout
    (found,) = [t for t in env.list_tasks("scripted") if t.id == task]
    episodes = GroupPlayer(policy, env, rollout).play(found)
    assign_rewards(found, episodes, rollout.reward)
    result = build_group(found, f"remote-contract-{task}", episodes)

    assert len(result.errors) == 3
    for error in result.errors:
        assert "broke the Step contract: reward: absent with status OK" in error and "'scripted'" in error
    assert len(result.group.trajectories) == 3  # their sampled turns stay on record, flagged
    for trajectory in result.group.trajectories:
        assert trajectory.infra_failure == INFRA_FAILURE_ENV_ERROR
        assert trajectory.status.code == ERROR and "reward: absent" in trajectory.status.message
        assert len(trajectory.turns) == played
    # The learner trains none of them: no reward of 0 for a reply that had none.
    assert build_batch([result.group]).valid.tolist() == [False, False, False]


@pytest.mark.slow
@pytest.mark.parametrize(("task", "problem"), [("no-reward", "env Step: status OK without a reward"), ("no-status", "env Step: the reply has no status")])
def test_the_rollout_itself_never_reads_a_missing_reward_as_0(rollout_services, scripted_remote, task, problem):
    """The rollout's own guard: its env client talks to the remote EnvService directly,
    with no env service in between to catch the broken reply."""
    from outrider.clients.env import EnvClient
    from outrider.config import parse_config
    from outrider.learner.batch import build_batch
    from outrider.proto.v1.trajectory_pb2 import INFRA_FAILURE_ENV_ERROR
    from outrider.rollout.episodes import GroupPlayer, build_group
    from outrider.rollout.rewards import assign_rewards

    policy, _ = rollout_services
    rollout = parse_config({"rollout": {"group_size": 2, "sampling": {"max_tokens": 4}}}).rollout
    with EnvClient(f"127.0.0.1:{scripted_remote.port}") as direct:
        (found,) = [t for t in direct.list_tasks("scripted") if t.id == task]
        episodes = GroupPlayer(policy, direct, rollout).play(found)
    assign_rewards(found, episodes, rollout.reward)
    result = build_group(found, f"remote-direct-{task}", episodes)
    assert result.errors == [f"episode {i}: {problem}" for i in range(2)]
    assert [t.infra_failure for t in result.group.trajectories] == [INFRA_FAILURE_ENV_ERROR] * 2
    assert build_batch([result.group]).valid.tolist() == [False, False]

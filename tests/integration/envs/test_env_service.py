"""The env service over real gRPC: built-ins played through it, task listing, registration,
and bad input answered with proper statuses while the server keeps serving."""

from __future__ import annotations

import asyncio
import json
import textwrap

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from outrider.envs.tools import format_call
from outrider.proto.v1 import common_pb2, env_pb2
from outrider.clients.env import EnvClient

pytestmark = pytest.mark.sandbox

OK = common_pb2.ItemStatus.OK


def counter(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def reference_task(stub, env: str, index: int = 0, split: str = "train") -> common_pb2.Task:
    reply = await stub.ListTasks(env_pb2.ListTasksRequest(env=env, split=split, offset=index, limit=1, include_reference=True))
    return reply.tasks[0]


async def play(stub, env: str, task_id: str, actions: list[str]) -> tuple[list[env_pb2.StepResponse], env_pb2.CloseSessionResponse]:
    session = await stub.CreateSession(env_pb2.CreateSessionRequest(env=env, task_id=task_id, seed=1))
    replies = []
    for text in actions:
        reply = await stub.Step(env_pb2.StepRequest(session_id=session.session_id, action=env_pb2.Action(text=text)))
        replies.append(reply)
        if reply.done:
            break
    return replies, await stub.CloseSession(env_pb2.CloseSessionRequest(session_id=session.session_id))


async def expect_status(call, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    return info.value.details()


# --- happy paths ----------------------------------------------------------------


async def test_lists_builtins_and_reports_serving(start_env_service):
    built, stub = await start_env_service()
    names = [spec.name for spec in (await stub.ListEnvs(env_pb2.ListEnvsRequest())).envs]
    assert names == ["code", "guess-number", "math", "nim", "python-tool"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="outrider.v1.EnvService"))
    assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_math_through_the_service_wrong_then_right(start_env_service):
    _, stub = await start_env_service()
    task = await reference_task(stub, "math", 2)
    replies, summary = await play(stub, "math", task.id, ["Answer: -1", f"Answer: {task.reference}"])
    assert [r.reward for r in replies] == [0.0, 1.0]
    assert "-1 is not correct" in replies[0].observation.messages[0].content
    assert replies[1].done and replies[1].info.solved and replies[1].turn == 2
    assert (summary.turns, summary.total_reward, summary.solved) == (2, 1.0, True)


async def test_math_is_truncated_at_max_turns_through_the_service(start_env_service):
    _, stub = await start_env_service()
    task = await reference_task(stub, "math")
    replies, summary = await play(stub, "math", task.id, ["Answer: -1"] * 5)
    assert len(replies) == 3  # the built-in math spec has max_turns 3
    assert replies[-1].done and replies[-1].truncated and not replies[-1].info.solved
    assert list(replies[-1].observation.messages) == []
    assert summary.total_reward == 0.0


async def test_guess_number_through_the_service_gives_process_signals(start_env_service):
    _, stub = await start_env_service()
    task = await reference_task(stub, "guess-number", 1)  # index 1: level 1, numbers 1-100
    target = int(task.reference)
    guess = 100 if target < 100 else 1
    replies, summary = await play(stub, "guess-number", task.id, [str(guess), str(target)])
    assert replies[0].info.HasField("process_score")
    assert replies[0].info.process_score == 1.0 - abs(guess - target) / 99
    assert replies[1].reward == 1.0 and replies[1].info.process_score == 1.0
    assert summary.solved


async def test_code_through_the_service(start_env_service):
    _, stub = await start_env_service()
    task = await reference_task(stub, "code", 0)
    solution = json.loads(task.reference)["solution"]
    replies, summary = await play(stub, "code", task.id, ["```python\ndef nothing():\n    pass\n```", f"```python\n{solution}```"])
    assert [r.reward for r in replies] == [0.0, 1.0]
    assert "failed to load" in replies[0].observation.messages[0].content or "hidden tests failed" in replies[0].observation.messages[0].content
    assert replies[1].info.metrics["tests_passed"] == replies[1].info.metrics["tests_total"]
    assert summary.solved


async def test_python_tool_through_the_service_counts_a_malformed_call(start_env_service):
    _, stub = await start_env_service()
    task = await reference_task(stub, "python-tool", 0)
    expression = task.preview.removeprefix("What is ").removesuffix("?")
    before = counter("outrider_env_tool_calls_total", env="python-tool", tool="?", status="INVALID_INPUT")
    replies, summary = await play(
        stub,
        "python-tool",
        task.id,
        ["<tool_call>not json</tool_call>", format_call("python", {"code": f"print({expression})"}), f"Answer: {task.reference}"],
    )
    bad, good, answer = replies
    assert bad.status.code == OK and not bad.done
    assert bad.info.tool_calls[0].status.code == common_pb2.ItemStatus.INVALID_INPUT
    assert bad.info.tool_calls[0].status.source == "env:python-tool"
    assert counter("outrider_env_tool_calls_total", env="python-tool", tool="?", status="INVALID_INPUT") == before + 1
    assert good.info.tool_calls[0].sandbox.stdout == f"{task.reference}\n"
    assert good.observation.messages[0].role == "tool"
    assert answer.reward == 1.0 and summary.total_reward == 1.0


async def test_list_tasks_pages_splits_and_hides_references(start_env_service):
    _, stub = await start_env_service()
    page = await stub.ListTasks(env_pb2.ListTasksRequest(env="math", offset=10, limit=5))
    assert [t.id for t in page.tasks] == [f"train-{i:05d}" for i in range(10, 15)]
    assert page.total == 1000
    assert all(t.reference == "" and t.env == "math" and t.split == "train" for t in page.tasks)
    test = await stub.ListTasks(env_pb2.ListTasksRequest(env="code", split="test", include_reference=True))
    assert test.total == 10 and all(t.split == "test" and json.loads(t.reference)["tests"] for t in test.tasks)
    default_page = await stub.ListTasks(env_pb2.ListTasksRequest(env="math"))
    assert len(default_page.tasks) == 100  # list_tasks_page_size


async def test_register_python_spec_replace_and_unregister(start_env_service):
    _, stub = await start_env_service()
    spec = env_pb2.EnvSpec(name="math-tiny", python=env_pb2.PythonEntryPoint(entry_point="outrider.envs.builtin.math_env:MathEnv"),
                           params={"difficulty": "0", "num_train": "5"})
    stored = (await stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=spec))).spec
    assert stored.max_turns == 10 and stored.version == "0.0.0"  # defaults filled in
    assert (await stub.ListTasks(env_pb2.ListTasksRequest(env="math-tiny"))).total == 5
    details = await expect_status(stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=spec)), grpc.StatusCode.ALREADY_EXISTS)
    assert "math-tiny" in details
    spec.params["num_train"] = "7"
    await stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=spec, replace=True))
    assert (await stub.ListTasks(env_pb2.ListTasksRequest(env="math-tiny"))).total == 7
    await stub.UnregisterEnv(env_pb2.UnregisterEnvRequest(name="math-tiny"))
    await expect_status(stub.UnregisterEnv(env_pb2.UnregisterEnvRequest(name="math-tiny")), grpc.StatusCode.NOT_FOUND)


async def test_sync_client(start_env_service):
    built, _ = await start_env_service()

    def use_client():
        with EnvClient(f"127.0.0.1:{built.port}") as client:
            names = [spec.name for spec in client.list_envs()]
            task = client.list_tasks("math", limit=1, include_reference=True)[0]
            session = client.create_session("math", task.id)
            reply = client.step(session.session_id, f"Answer: {task.reference}")
            summary = client.close_session(session.session_id)
            return names, client.count_tasks("math", "test"), reply, summary

    names, test_count, reply, summary = await asyncio.to_thread(use_client)
    assert "math" in names and test_count == 200
    assert reply.reward == 1.0 and summary.solved


# --- bad input: proper statuses, and the server keeps serving -------------------------


async def test_unknown_env_and_task(start_env_service):
    _, stub = await start_env_service()
    details = await expect_status(stub.CreateSession(env_pb2.CreateSessionRequest(env="chess", task_id="train-00000")), grpc.StatusCode.NOT_FOUND)
    assert "unknown environment 'chess'" in details and "math" in details
    await expect_status(stub.ListTasks(env_pb2.ListTasksRequest(env="chess")), grpc.StatusCode.NOT_FOUND)
    details = await expect_status(stub.CreateSession(env_pb2.CreateSessionRequest(env="math", task_id="train-99999")), grpc.StatusCode.NOT_FOUND)
    assert "train-99999" in details
    await expect_status(stub.CreateSession(env_pb2.CreateSessionRequest(env="math")), grpc.StatusCode.INVALID_ARGUMENT)
    await expect_status(stub.ListTasks(env_pb2.ListTasksRequest(env="math", split="valid")), grpc.StatusCode.INVALID_ARGUMENT)
    assert len((await stub.ListEnvs(env_pb2.ListEnvsRequest())).envs) == 5


async def test_invalid_spec_is_invalid_argument_naming_the_fields(start_env_service):
    _, stub = await start_env_service()
    bad = env_pb2.EnvSpec(name="Bad Name!", python=env_pb2.PythonEntryPoint(entry_point="nope"))
    details = await expect_status(stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=bad)), grpc.StatusCode.INVALID_ARGUMENT)
    assert "spec.name:" in details and "spec.python.entry_point:" in details
    missing = env_pb2.EnvSpec(name="ghost", python=env_pb2.PythonEntryPoint(entry_point="outrider.envs.builtin.ghost:Env"))
    details = await expect_status(stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=missing)), grpc.StatusCode.INVALID_ARGUMENT)
    assert "raised ModuleNotFoundError: No module named 'outrider.envs.builtin.ghost'" in details  # in the child import
    bad_params = env_pb2.EnvSpec(name="m", python=env_pb2.PythonEntryPoint(entry_point="outrider.envs.builtin.math_env:MathEnv"), params={"difficulty": "99"})
    details = await expect_status(stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=bad_params)), grpc.StatusCode.INVALID_ARGUMENT)
    assert "spec.params.difficulty" in details
    assert [s.name for s in (await stub.ListEnvs(env_pb2.ListEnvsRequest())).envs] == ["code", "guess-number", "math", "nim", "python-tool"]


async def test_oversized_action_is_refused_and_the_session_goes_on(start_env_service):
    _, stub = await start_env_service(max_action_bytes=1024)
    task = await reference_task(stub, "math")
    session = await stub.CreateSession(env_pb2.CreateSessionRequest(env="math", task_id=task.id))
    huge = env_pb2.Action(text="9" * 1025)
    details = await expect_status(stub.Step(env_pb2.StepRequest(session_id=session.session_id, action=huge)), grpc.StatusCode.INVALID_ARGUMENT)
    assert "1025 bytes" in details and "max_action_bytes" in details
    reply = await stub.Step(env_pb2.StepRequest(session_id=session.session_id, action=env_pb2.Action(text=f"Answer: {task.reference}")))
    assert reply.reward == 1.0 and reply.turn == 1


async def test_unknown_and_expired_sessions(start_env_service):
    _, stub = await start_env_service(session_ttl_s=1, cleanup_interval_s=0.1)
    action = env_pb2.Action(text="1")
    details = await expect_status(stub.Step(env_pb2.StepRequest(session_id="nope", action=action)), grpc.StatusCode.NOT_FOUND)
    assert "unknown session 'nope'" in details
    await expect_status(stub.CloseSession(env_pb2.CloseSessionRequest(session_id="nope")), grpc.StatusCode.NOT_FOUND)
    before = counter("outrider_env_sessions_expired_total", env="math")
    session = await stub.CreateSession(env_pb2.CreateSessionRequest(env="math", task_id="train-00000"))
    assert session.ttl_s == 1.0
    await asyncio.sleep(1.6)  # idle past the 1 s TTL; cleanup runs every 0.1 s
    details = await expect_status(stub.Step(env_pb2.StepRequest(session_id=session.session_id, action=action)), grpc.StatusCode.NOT_FOUND)
    assert "expired" in details
    assert counter("outrider_env_sessions_expired_total", env="math") == before + 1


async def test_session_limit_is_resource_exhausted(start_env_service):
    _, stub = await start_env_service(max_sessions=2)
    first = await stub.CreateSession(env_pb2.CreateSessionRequest(env="math", task_id="train-00000"))
    await stub.CreateSession(env_pb2.CreateSessionRequest(env="math", task_id="train-00001"))
    details = await expect_status(stub.CreateSession(env_pb2.CreateSessionRequest(env="math", task_id="train-00002")), grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert "max_sessions" in details
    await stub.CloseSession(env_pb2.CloseSessionRequest(session_id=first.session_id))
    await stub.CreateSession(env_pb2.CreateSessionRequest(env="math", task_id="train-00002"))


async def test_step_after_the_episode_ended_is_failed_precondition(start_env_service):
    _, stub = await start_env_service()
    task = await reference_task(stub, "math")
    session = await stub.CreateSession(env_pb2.CreateSessionRequest(env="math", task_id=task.id))
    action = env_pb2.Action(text=f"Answer: {task.reference}")
    await stub.Step(env_pb2.StepRequest(session_id=session.session_id, action=action))
    details = await expect_status(stub.Step(env_pb2.StepRequest(session_id=session.session_id, action=action)), grpc.StatusCode.FAILED_PRECONDITION)
    assert "is over" in details


FAILING_ENV = textwrap.dedent('''
    from outrider.envs import Environment, Message, StepResult, Task

    class FailingEnv(Environment):
        def tasks(self, split):
            return [Task("train-0", "train")]

        async def reset(self, task_id, seed):
            if task_id == "explode":
                raise RuntimeError("reset exploded")
            return [Message("user", "say anything; 'boom' breaks me")]

        async def step(self, action):
            if action == "boom":
                raise ValueError("step exploded")
            return StepResult([Message("user", "fine")], reward=0.25, done=False)
''')


async def test_environment_errors_are_explicit_statuses_not_rewards(start_env_service, tmp_path, monkeypatch):
    module = tmp_path / "outrider_test_failing_env.py"
    module.write_text(FAILING_ENV)
    monkeypatch.syspath_prepend(str(tmp_path))
    built, stub = await start_env_service(allowed_python_modules=["outrider_test_failing_env"])
    spec = env_pb2.EnvSpec(name="failing", python=env_pb2.PythonEntryPoint(entry_point="outrider_test_failing_env:FailingEnv"))
    await stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=spec))
    step_errors = counter("outrider_env_errors_total", env="failing", stage="step")
    reset_errors = counter("outrider_env_errors_total", env="failing", stage="reset")

    session = await stub.CreateSession(env_pb2.CreateSessionRequest(env="failing", task_id="train-0"))
    fine = await stub.Step(env_pb2.StepRequest(session_id=session.session_id, action=env_pb2.Action(text="hello")))
    assert fine.status.code == OK and fine.reward == 0.25
    failed = await stub.Step(env_pb2.StepRequest(session_id=session.session_id, action=env_pb2.Action(text="boom")))
    assert failed.status.code == common_pb2.ItemStatus.ERROR
    assert failed.status.message == "ValueError: step exploded" and failed.status.source == "env:failing"
    assert not failed.HasField("reward")  # absent, not zero
    assert failed.done and failed.turn == 2
    assert counter("outrider_env_errors_total", env="failing", stage="step") == step_errors + 1
    assert counter("outrider_env_steps_total", env="failing", status="ERROR") >= 1
    record = built.core.sessions.get(session.session_id)
    assert record.errors == 1 and record.total_reward == 0.25
    summary = await stub.CloseSession(env_pb2.CloseSessionRequest(session_id=session.session_id))
    assert (summary.turns, summary.total_reward, summary.solved) == (2, 0.25, False)

    details = await expect_status(stub.CreateSession(env_pb2.CreateSessionRequest(env="failing", task_id="explode")), grpc.StatusCode.INTERNAL)
    assert "environment 'failing' failed to start task 'explode': RuntimeError: reset exploded" in details
    assert counter("outrider_env_errors_total", env="failing", stage="reset") == reset_errors + 1
    assert len((await stub.ListEnvs(env_pb2.ListEnvsRequest())).envs) == 6

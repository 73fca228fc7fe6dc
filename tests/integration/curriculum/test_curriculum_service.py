"""The curriculum service over real gRPC, with real Redis (system and embedded)."""

from __future__ import annotations

import asyncio
import json
import math

import grpc
import pytest

from outrider.config import CurriculumServiceConfig, RedisConfig, ServerConfig
from outrider.config.curriculum import DatasetPoolConfig, EnvServicePool, ExclusionConfig, UniformStrategy
from outrider.proto.v1 import curriculum_pb2, curriculum_pb2_grpc
from outrider.services.curriculum.server import create_server
from outrider.services.curriculum.store import RedisCurriculumStore
from outrider.services.curriculum.strategies import Curriculum
from outrider.services.curriculum.table import TaskInfo, TaskRecord


def write_dataset(path, n: int = 20) -> str:
    rows = [{"id": f"q{i:02d}", "prompt": f"What is {i} + 1?", "difficulty": i % 2, "reference": str(i + 1)} for i in range(n)]
    rows.append({"id": "held-out", "prompt": "x", "split": "test"})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


def service_config(redis_url: str, prefix: str, dataset: str, **changes) -> CurriculumServiceConfig:
    values = dict(
        server=ServerConfig(metrics_port=None, grace_s=0),
        redis=RedisConfig(url=redis_url),
        key_prefix=prefix,
        pools=[DatasetPoolConfig(env="math", path=dataset)],
        seed=3,
    )
    return CurriculumServiceConfig(**(values | changes))


@pytest.fixture
async def served(redis_url, bus_prefix, tmp_path):
    cfg = service_config(redis_url, bus_prefix, write_dataset(tmp_path / "tasks.jsonl"))
    built = await create_server(cfg)
    await built.start()
    await built.core.wait_ready(30)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as channel:
        yield curriculum_pb2_grpc.CurriculumServiceStub(channel), built
    await built.stop(0)


async def test_next_report_state_roundtrip(served):
    stub, _ = served
    reply = await stub.NextTasks(curriculum_pb2.NextTasksRequest(n=5, include_reference=True))
    assert len({t.id for t in reply.tasks}) == 5
    first = reply.tasks[0]
    assert first.env == "math" and first.split == "train"
    # The dataset's reference is i + 1 for id q<i>.
    assert first.reference == str(int(first.id[1:]) + 1)
    plain = await stub.NextTasks(curriculum_pb2.NextTasksRequest(n=2))
    assert all(t.reference == "" for t in plain.tasks)
    outcome = curriculum_pb2.TaskOutcome(env="math", task_id=first.id, rewards=[1.0, 0.0, 1.0, 1.0])
    assert (await stub.ReportOutcomes(curriculum_pb2.ReportOutcomesRequest(outcomes=[outcome]))).accepted == 1
    state = await stub.GetState(curriculum_pb2.GetStateRequest(max_tasks=3))
    assert state.strategy == "learnability" and state.num_tasks == 20 and state.total_attempts == 4
    top = state.tasks[0]
    assert (top.task_id, top.attempts, top.mean_reward, top.pass_rate) == (first.id, 4, 0.75, 0.75)
    # p = (3 + 1) / (4 + 2) = 2/3 -> p(1 - p) = 2/9.
    assert math.isclose(top.weight, 2 / 9, rel_tol=1e-12)
    assert state.envs[0].env == "math" and state.envs[0].tasks == 20 and state.envs[0].attempts == 4


async def test_bad_requests_get_statuses_and_the_service_keeps_serving(served):
    stub, built = served

    async def status_of(call, request):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call(request)
        return error.value.code(), error.value.details()

    code, message = await status_of(stub.NextTasks, curriculum_pb2.NextTasksRequest(n=0))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "n:" in message
    code, message = await status_of(stub.NextTasks, curriculum_pb2.NextTasksRequest(n=10**6))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "4096" in message
    code, message = await status_of(stub.NextTasks, curriculum_pb2.NextTasksRequest(n=1, env="chess"))
    assert code == grpc.StatusCode.NOT_FOUND and "'chess'" in message and "math" in message
    code, message = await status_of(stub.ReportOutcomes, curriculum_pb2.ReportOutcomesRequest())
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "empty batch" in message
    good = curriculum_pb2.TaskOutcome(env="math", task_id="q01", rewards=[1.0])
    unknown = curriculum_pb2.TaskOutcome(env="math", task_id="q99", rewards=[1.0])
    code, message = await status_of(stub.ReportOutcomes, curriculum_pb2.ReportOutcomesRequest(outcomes=[good, unknown]))
    assert code == grpc.StatusCode.NOT_FOUND and "outcomes[1]" in message and "'q99'" in message
    held_out = curriculum_pb2.TaskOutcome(env="math", task_id="held-out", rewards=[1.0])
    code, _ = await status_of(stub.ReportOutcomes, curriculum_pb2.ReportOutcomesRequest(outcomes=[held_out]))
    assert code == grpc.StatusCode.NOT_FOUND  # a test-split task is not in the training pool
    empty = curriculum_pb2.TaskOutcome(env="math", task_id="q01")
    code, message = await status_of(stub.ReportOutcomes, curriculum_pb2.ReportOutcomesRequest(outcomes=[empty]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "outcomes[0].rewards" in message
    nan = curriculum_pb2.TaskOutcome(env="math", task_id="q01", rewards=[float("nan")])
    code, message = await status_of(stub.ReportOutcomes, curriculum_pb2.ReportOutcomesRequest(outcomes=[nan]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "finite" in message
    # All-or-nothing: the valid outcome next to the unknown one was not recorded.
    state = await stub.GetState(curriculum_pb2.GetStateRequest())
    assert state.total_attempts == 0
    assert len((await stub.NextTasks(curriculum_pb2.NextTasksRequest(n=3))).tasks) == 3


async def test_state_is_saved_to_redis_after_every_call(served, redis_url, bus_prefix):
    stub, built = served
    tasks = (await stub.NextTasks(curriculum_pb2.NextTasksRequest(n=2))).tasks
    await stub.ReportOutcomes(
        curriculum_pb2.ReportOutcomesRequest(outcomes=[curriculum_pb2.TaskOutcome(env="math", task_id=tasks[1].id, rewards=[0.0, 1.0])])
    )
    store = RedisCurriculumStore(redis_url, bus_prefix)
    saved, records = await store.load()
    await store.close()
    assert saved["clock"] == 2 and saved["strategy"] == "learnability"
    assert [(r.task_id, r.attempts, r.recent) for r in records] == [(tasks[1].id, 2, (0, 1))]
    assert saved == built.core.curriculum.global_state()


async def test_store_roundtrip_and_clear(redis_url, bus_prefix):
    store = RedisCurriculumStore(redis_url, bus_prefix)
    assert await store.load() == (None, [])
    weird = TaskRecord("env:with/colons", 'id "quoted"\t', 3, 2.5, (1, 0, 1), 123.5, 7)
    await store.save({"clock": 1}, [weird])
    await store.save({"clock": 2}, [])
    assert await store.load() == ({"clock": 2}, [weird])
    await store.clear()
    assert await store.load() == (None, [])
    await store.close()


async def test_restarted_service_object_continues_with_the_same_state(redis_url, bus_prefix, tmp_path):
    dataset = write_dataset(tmp_path / "tasks.jsonl")
    cfg = service_config(redis_url, bus_prefix, dataset, strategy=UniformStrategy(), exclusion=ExclusionConfig(enabled=True, recheck_after=100))
    tasks = [TaskInfo("math", f"q{i:02d}", float(i % 2)) for i in range(20)]
    twin = Curriculum(tasks, UniformStrategy(), ExclusionConfig(enabled=True, recheck_after=100), seed=3)
    for _ in range(2):  # the second server is a fresh one over the same Redis keys
        built = await create_server(cfg)
        await built.start()
        await built.core.wait_ready(30)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as channel:
            stub = curriculum_pb2_grpc.CurriculumServiceStub(channel)
            got = [t.id for t in (await stub.NextTasks(curriculum_pb2.NextTasksRequest(n=4))).tasks]
            assert got == [twin.table.tasks[r].task_id for r in twin.sample(4)]
            outcome = curriculum_pb2.TaskOutcome(env="math", task_id=got[0], rewards=[1.0, 1.0])
            await stub.ReportOutcomes(curriculum_pb2.ReportOutcomesRequest(outcomes=[outcome]))
            twin.report(twin.table.row("math", got[0]), [1.0, 1.0])
            twin.after_reports([twin.table.row("math", got[0])])
        await built.stop(0)
    served_tasks = built.core.curriculum.state_dict()["tasks"]
    for stats in served_tasks.values():
        assert stats.pop("last_seen") > 0  # wall-clock time of the report; the twin has none
    assert served_tasks == {key: {k: v for k, v in stats.items() if k != "last_seen"} for key, stats in twin.state_dict()["tasks"].items()}
    assert built.core.curriculum.excluded().sum() == 2


async def test_missing_dataset_fails_with_failed_precondition(redis_url, bus_prefix, tmp_path):
    cfg = service_config(redis_url, bus_prefix, str(tmp_path / "missing.jsonl"))
    built = await create_server(cfg)
    await built.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as channel:
            stub = curriculum_pb2_grpc.CurriculumServiceStub(channel)
            for _ in range(50):
                try:
                    await stub.GetState(curriculum_pb2.GetStateRequest())
                except grpc.aio.AioRpcError as exc:
                    if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                        assert "missing.jsonl" in exc.details()
                        break
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the missing dataset was never reported")
    finally:
        await built.stop(0)


async def test_env_service_pool_lists_tasks_through_the_env_service(redis_url, bus_prefix):
    from outrider.config.env import EnvServiceConfig
    from outrider.services.env.server import create_server as create_env_server

    env_built = await create_env_server(EnvServiceConfig(server=ServerConfig(metrics_port=None, grace_s=0), builtin_envs=["math"]))
    await env_built.start()
    try:
        pool = EnvServicePool(address=f"127.0.0.1:{env_built.port}", envs=["math"], page_size=300)
        cfg = CurriculumServiceConfig(
            server=ServerConfig(metrics_port=None, grace_s=0), redis=RedisConfig(url=redis_url), key_prefix=bus_prefix, pools=[pool]
        )
        built = await create_server(cfg)
        await built.start()
        curriculum = await built.core.wait_ready(60)
        # The math env has 1000 training tasks by default; pages of 300 -> 4 calls.
        assert len(curriculum.table) == 1000
        async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as channel:
            stub = curriculum_pb2_grpc.CurriculumServiceStub(channel)
            task = (await stub.NextTasks(curriculum_pb2.NextTasksRequest(n=1, include_reference=True))).tasks[0]
            assert task.env == "math" and task.preview and task.reference
        await built.stop(0)
    finally:
        await env_built.stop(0)


async def test_redis_outage_is_unavailable_and_changes_are_saved_after_it(bus_prefix, tmp_path):
    from outrider.transport import start_embedded

    server = start_embedded()
    url, port = server.connection_url, server.port
    cfg = service_config(url, bus_prefix, write_dataset(tmp_path / "tasks.jsonl"))
    built = await create_server(cfg)
    await built.start()
    await built.core.wait_ready(30)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as channel:
            stub = curriculum_pb2_grpc.CurriculumServiceStub(channel)
            server.stop()
            outcome = curriculum_pb2.TaskOutcome(env="math", task_id="q03", rewards=[1.0, 0.0])
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await stub.ReportOutcomes(curriculum_pb2.ReportOutcomesRequest(outcomes=[outcome]))
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE and "curriculum store" in error.value.details()
            server = start_embedded(port=port)
            # The next successful save also writes the row whose save failed.
            await stub.NextTasks(curriculum_pb2.NextTasksRequest(n=1))
            store = RedisCurriculumStore(url, bus_prefix)
            saved, records = await store.load()
            await store.close()
            assert [(r.task_id, r.attempts) for r in records] == [("q03", 2)] and saved["clock"] == 1
    finally:
        await built.stop(0)
        server.stop()

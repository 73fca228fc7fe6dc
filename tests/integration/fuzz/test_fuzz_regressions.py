"""The inputs the fuzz tests found, each against the real service over gRPC (not marked slow)."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest

from outrider.config import CurriculumServiceConfig
from outrider.proto.v1 import curriculum_pb2, curriculum_pb2_grpc
from outrider.serving.server import MAX_STATUS_MESSAGE_BYTES
from outrider.services.curriculum.server import create_server


@pytest.fixture
async def curriculum(tmp_path, any_redis_url):
    dataset = tmp_path / "tasks.jsonl"
    dataset.write_text(json.dumps({"id": "q0", "prompt": "1 + 1?", "reference": "2"}) + "\n")
    cfg = CurriculumServiceConfig.model_validate({
        "server": {"metrics_port": None, "grace_s": 0},
        "redis": {"url": any_redis_url},
        "key_prefix": f"fuzz-regression-{uuid.uuid4().hex[:12]}",
        "pools": [{"type": "dataset", "env": "math", "path": str(dataset)}],
    })
    built = await create_server(cfg)
    await built.start()
    await built.core.wait_ready(30)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as channel:
        yield curriculum_pb2_grpc.CurriculumServiceStub(channel)
    await built.stop(0)


async def test_next_tasks_for_a_20000_character_env_name_is_not_found(curriculum):
    """Was RESOURCE_EXHAUSTED ("received metadata size exceeds hard limit"): the NOT_FOUND
    message quoted the whole name and overflowed the client's trailer limit."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await curriculum.NextTasks(curriculum_pb2.NextTasksRequest(n=1, env="a" * 20_000))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND, info.value.details()
    details = info.value.details()
    assert details.startswith("env: no tasks of environment 'aaaa") and details.endswith(" more bytes)")
    assert len(details.encode()) < MAX_STATUS_MESSAGE_BYTES + 40

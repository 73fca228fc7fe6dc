"""The reward service's Score and GetInfo over real gRPC: per-env verifiers, statuses, bad input."""

from __future__ import annotations

import json
import random
import shutil
import uuid
from pathlib import Path

import grpc
import pytest
from prometheus_client import REGISTRY

from outrider.config import RewardServiceConfig, ServerConfig
from outrider.config.env import SandboxConfig
from outrider.config.reward import CodeVerifierConfig, FormatVerifierConfig, LengthVerifierConfig, MathVerifierConfig, RewardLimits
from outrider.envs.sandbox import SandboxUnavailable
from outrider.proto.v1 import common_pb2, reward_pb2, reward_pb2_grpc
from outrider.services.reward.server import create_server

OK, ERROR, INVALID = common_pb2.ItemStatus.OK, common_pb2.ItemStatus.ERROR, common_pb2.ItemStatus.INVALID_INPUT


@pytest.fixture
async def stub():
    cfg = RewardServiceConfig(
        server=ServerConfig(metrics_port=None, grace_s=0),
        verifiers={
            "*": [MathVerifierConfig()],
            "boxed-math": [MathVerifierConfig(weight=1.0), FormatVerifierConfig(weight=0.2, require_answer="boxed"), LengthVerifierConfig(weight=1.0, max_length=100, buffer=20)],
        },
        limits=RewardLimits(max_batch_items=4, max_response_chars=1000),
    )
    built = await create_server(cfg)
    await built.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as channel:
        yield reward_pb2_grpc.RewardServiceStub(channel)
    await built.stop(0)


async def test_score_uses_the_environments_verifiers(stub):
    items = [
        reward_pb2.ScoreItem(id="plain", env="math", response="The answer is 1/2.", reference="0.5"),
        reward_pb2.ScoreItem(id="boxed", env="boxed-math", response="\\boxed{42}", reference="42", response_tokens=90),
        reward_pb2.ScoreItem(id="unboxed", env="boxed-math", response="Answer: 42", reference="42", response_tokens=10),
    ]
    plain, boxed, unboxed = (await stub.Score(reward_pb2.ScoreRequest(items=items))).results
    assert (plain.id, plain.reward, plain.status.code) == ("plain", 1.0, OK)
    assert [c.name for c in plain.components] == ["math"]
    # 1.0 * 1 + 0.2 * 1 + 1.0 * ((80 - 90) / 20) = 1.2 - 0.5 = 0.7
    assert boxed.reward == pytest.approx(0.7, abs=1e-12)
    assert [(c.name, c.weight, c.value) for c in boxed.components] == [("math", 1.0, 1.0), ("format", 0.2, 1.0), ("length", 1.0, -0.5)]
    # Correct but not boxed, short: 1.0 + 0.2 * 0 + 0 = 1.0
    assert unboxed.reward == pytest.approx(1.0, abs=1e-12) and unboxed.components[1].detail == "no \\boxed{...} answer"


async def test_verifier_override_per_request(stub):
    item = reward_pb2.ScoreItem(id="a", env="boxed-math", response="Answer: 7", reference="7", response_tokens=5)
    only_format = (await stub.Score(reward_pb2.ScoreRequest(items=[item], verifiers=["format"]))).results[0]
    # The environment's own format config (require boxed, weight 0.2) is used.
    assert [(c.name, c.weight, c.value) for c in only_format.components] == [("format", 0.2, 0.0)] and only_format.reward == 0.0
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Score(reward_pb2.ScoreRequest(items=[item], verifiers=["vibes"]))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "unknown ['vibes']" in error.value.details()


async def test_errors_are_statuses_not_zeros_and_are_counted(stub):
    labels = {"method": "Score", "source": "verifier:length", "code": "INVALID_INPUT"}
    before = REGISTRY.get_sample_value("outrider_reward_item_errors_total", labels) or 0.0
    items = [
        reward_pb2.ScoreItem(id="no-ref", env="math", response="42"),
        reward_pb2.ScoreItem(id="no-tokens", env="boxed-math", response="\\boxed{1}", reference="1"),
        reward_pb2.ScoreItem(id="wrong", env="math", response="41", reference="42"),
    ]
    no_ref, no_tokens, wrong = (await stub.Score(reward_pb2.ScoreRequest(items=items))).results
    assert not no_ref.HasField("reward") and no_ref.status.code == ERROR and no_ref.status.source == "verifier:math"
    assert "no reference" in no_ref.status.message
    assert not no_tokens.HasField("reward") and no_tokens.status.code == INVALID
    assert not no_tokens.components[2].HasField("value") and no_tokens.components[0].value == 1.0
    # A wrong answer is a reward of 0 with status OK.
    assert wrong.HasField("reward") and wrong.reward == 0.0 and wrong.status.code == OK
    assert REGISTRY.get_sample_value("outrider_reward_item_errors_total", labels) == before + 1


async def test_bad_requests_and_the_service_keeps_serving(stub):
    async def code_of(request):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.Score(request)
        return error.value.code(), error.value.details()

    assert await code_of(reward_pb2.ScoreRequest()) == (grpc.StatusCode.INVALID_ARGUMENT, "items: empty batch")
    five = [reward_pb2.ScoreItem(response="1", reference="1")] * 5
    assert await code_of(reward_pb2.ScoreRequest(items=five)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "items: 5 items, more than limits.max_batch_items (4)",
    )
    big = reward_pb2.ScoreItem(response="9" * 1001, reference="1")
    code, message = await code_of(reward_pb2.ScoreRequest(items=[reward_pb2.ScoreItem(response="1", reference="1"), big]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("items[1].response: 1001 characters")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.ScoreSteps(reward_pb2.ScoreStepsRequest(items=[reward_pb2.StepsItem()]))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "no process reward model" in error.value.details()
    still = (await stub.Score(reward_pb2.ScoreRequest(items=[reward_pb2.ScoreItem(response="Answer: 3", reference="3")]))).results[0]
    assert still.reward == 1.0


async def test_get_info_lists_verifiers(stub):
    info = await stub.GetInfo(reward_pb2.RewardInfoRequest())
    assert [(v.name, v.weight) for v in info.verifiers] == [("math", 1.0), ("boxed-math/math", 1.0), ("boxed-math/format", 0.2), ("boxed-math/length", 1.0)]
    assert info.prm == "" and info.shaping == reward_pb2.SHAPING_DIFFERENCE
    assert (info.segmentation.mode, info.segmentation.delimiter) == (reward_pb2.Segmentation.BY_DELIMITER, "\n\n")


@pytest.mark.sandbox
async def test_code_items_through_the_service_and_the_sandbox():
    root = Path("/tmp") / f"outrider-reward-svc-{uuid.uuid4().hex[:8]}"
    sandbox = SandboxConfig(workspace_root=str(root), uid_base=random.randrange(2_000_000, 2_000_000_000, 65536))
    cfg = RewardServiceConfig(server=ServerConfig(metrics_port=None, grace_s=0), verifiers={"code": [CodeVerifierConfig(sandbox=sandbox)], "*": [MathVerifierConfig()]})
    try:
        built = await create_server(cfg)
    except OSError as exc:
        if "SandboxUnavailable" in str(exc):
            pytest.skip(f"no sandbox backend on this host: {exc}")
        raise
    await built.start()
    reference = json.dumps({"tests": [["double(2)", "4"], ["double(-3)", "-6"]]})
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as channel:
            stub = reward_pb2_grpc.RewardServiceStub(channel)
            items = [
                reward_pb2.ScoreItem(id="good", env="code", response="```python\ndef double(x):\n    return 2 * x\n```", reference=reference),
                reward_pb2.ScoreItem(id="bad", env="code", response="```python\ndef double(x):\n    return x + 2\n```", reference=reference),
                reward_pb2.ScoreItem(id="math", env="math", response="4", reference="4"),
            ]
            good, bad, math_item = (await stub.Score(reward_pb2.ScoreRequest(items=items))).results
    finally:
        await built.stop(0)
        shutil.rmtree(root, ignore_errors=True)
    assert good.reward == 1.0 and good.components[0].detail == "2/2 tests passed"
    # x + 2: double(2) = 4 passes, double(-3) = -1 fails.
    assert bad.reward == 0.0 and bad.components[0].detail.startswith("1/2 tests passed")
    assert math_item.reward == 1.0


async def test_code_verifier_without_a_sandbox_stops_the_start():
    cfg = RewardServiceConfig(verifiers={"*": [CodeVerifierConfig(sandbox=SandboxConfig(backend="docker"))]}, server=ServerConfig(metrics_port=None))
    try:
        from outrider.envs.sandbox import make_sandbox

        make_sandbox("docker")
        pytest.skip("a Docker engine is reachable here; this test needs a host without one")
    except SandboxUnavailable:
        pass
    with pytest.raises(OSError, match="reward verifiers could not be built: SandboxUnavailable"):
        await create_server(cfg)

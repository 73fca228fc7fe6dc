"""A scalar-head PRM trained on the synthetic dataset, then served: AUC, served == direct, statuses."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import torch
from prometheus_client import REGISTRY

from outrider.config import RewardServiceConfig, ServerConfig
from outrider.config.reward import RewardLimits, ScalarHeadPRMConfig
from outrider.envs.shaping import step_rewards
from outrider.proto.v1 import common_pb2, reward_pb2, reward_pb2_grpc
from outrider.services.reward.prm import dataset as ds
from outrider.services.reward.prm import train as prm_train
from outrider.services.reward.server import create_server

pytestmark = pytest.mark.slow

SETTINGS = prm_train.TrainSettings(steps=1000, batch_size=32, lr=3e-3, seed=0, threads=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train the tiny scorer on 3000 generated solutions (about a minute on one core); save it."""
    torch.manual_seed(0)
    train_records = ds.make_step_records(3000, seed=1)
    test_records = ds.make_step_records(400, seed=2, exclude={r.prompt for r in train_records})
    tokenizer = prm_train.byte_tokenizer()
    model = prm_train.tiny_scorer(tokenizer, seed=0)
    prm_train.train(model, tokenizer, train_records, SETTINGS)
    scores, labels = prm_train.step_scores(model, tokenizer, test_records)
    out = prm_train.save_scorer(model, tokenizer, tmp_path_factory.mktemp("prm") / "model", SETTINGS, {"heldout_auc": prm_train.auc(scores, labels)})
    return out, test_records, prm_train.auc(scores, labels)


def conversation(record: ds.StepsRecord) -> list[common_pb2.ChatMessage]:
    messages, _ = ds.as_conversation(record.prompt, record.steps)
    return [common_pb2.ChatMessage(role=m.role, content=m.content) for m in messages]


@pytest.fixture
async def served(trained):
    path, _, _ = trained
    limits = RewardLimits(max_batch_items=500, max_trajectory_chars=2000, max_trajectory_tokens=300, max_steps=8)
    cfg = RewardServiceConfig(server=ServerConfig(metrics_port=None, grace_s=0), prm=ScalarHeadPRMConfig(model=str(path), batch_size=16, device="cpu"), limits=limits)
    built = await create_server(cfg)
    await built.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as channel:
        yield reward_pb2_grpc.RewardServiceStub(channel)
    await built.stop(0)


def test_trained_scorer_separates_correct_from_corrupted_steps(trained):
    _, test_records, heldout_auc = trained
    steps = sum(len(r.labels) for r in test_records)
    wrong = sum(r.labels.count(0) for r in test_records)
    print(f"held-out AUC {heldout_auc:.3f} over {steps} steps ({wrong} corrupted)")
    assert heldout_auc > 0.8


async def test_served_scores_match_direct_model_calls_and_separate_steps(trained, served):
    path, test_records, heldout_auc = trained
    stub = served
    items = [reward_pb2.StepsItem(id=str(i), conversation=conversation(r)) for i, r in enumerate(test_records)]
    reply = await stub.ScoreSteps(reward_pb2.ScoreStepsRequest(items=items))
    assert [r.id for r in reply.results] == [str(i) for i in range(len(items))]
    assert all(r.status.code == common_pb2.ItemStatus.OK for r in reply.results)
    served_scores = np.concatenate([np.array(r.scores) for r in reply.results])
    labels = np.concatenate([np.array(rec.labels) for rec in test_records])
    # The service reads the same model the fixture evaluated: the same AUC.
    assert prm_train.auc(served_scores, labels) == pytest.approx(heldout_auc, abs=1e-9)

    # Direct calls: the saved model through the plain HF API, one prefix at a time.
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(path)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    for result, record in list(zip(reply.results, test_records))[:25]:
        assert len(result.steps) == len(record.steps) and result.shaping == reward_pb2.SHAPING_DIFFERENCE
        prefix = f"user: {record.prompt}\nassistant: "
        direct = []
        for step in record.steps:
            prefix += step + "\n"
            ids = torch.tensor([tokenizer(prefix, add_special_tokens=False)["input_ids"]])
            with torch.inference_mode():
                direct.append(torch.sigmoid(model(input_ids=ids).logits[0, 0].double()).item())
        np.testing.assert_allclose(result.scores, direct, rtol=0, atol=2e-6)
        np.testing.assert_allclose(result.rewards, step_rewards(direct, "difference"), rtol=0, atol=4e-6)


async def test_shaping_and_segmentation_overrides_are_recorded(trained, served):
    _, test_records, _ = trained
    record = next(r for r in test_records if len(r.steps) >= 3)
    base = reward_pb2.StepsItem(id="a", conversation=conversation(record))
    by_min = reward_pb2.StepsItem(id="b", conversation=conversation(record), shaping=reward_pb2.SHAPING_MIN)
    by_turn = reward_pb2.StepsItem(
        id="c", conversation=conversation(record), segmentation=reward_pb2.Segmentation(mode=reward_pb2.Segmentation.BY_TURN)
    )
    a, b, c = (await served.ScoreSteps(reward_pb2.ScoreStepsRequest(items=[base, by_min, by_turn]))).results
    assert list(a.scores) == list(b.scores)
    assert b.shaping == reward_pb2.SHAPING_MIN
    assert list(b.rewards) == [0.0] * (len(b.scores) - 1) + [min(b.scores)]
    assert len(c.steps) == 1 and c.steps[0].message_index == 1 and len(c.scores) == 1


async def test_bad_input_gets_statuses_and_the_service_keeps_serving(trained, served):
    _, test_records, _ = trained
    stub = served

    async def code_of(request):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.ScoreSteps(request)
        return error.value.code(), error.value.details()

    code, message = await code_of(reward_pb2.ScoreStepsRequest())
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message == "items: empty batch"
    huge = reward_pb2.StepsItem(conversation=[common_pb2.ChatMessage(role="assistant", content="1 + 1 = 2\n\n" * 300)])
    code, message = await code_of(reward_pb2.ScoreStepsRequest(items=[reward_pb2.StepsItem(conversation=conversation(test_records[0])), huge]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("items[1].conversation: 3300 characters")
    many_steps = reward_pb2.StepsItem(conversation=[common_pb2.ChatMessage(role="assistant", content="\n\n".join(["1 + 1 = 2"] * 9))])
    code, message = await code_of(reward_pb2.ScoreStepsRequest(items=[many_steps]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "9 steps, more than limits.max_steps (8)" in message
    long_tokens = reward_pb2.StepsItem(conversation=[common_pb2.ChatMessage(role="user", content="x" * 400), common_pb2.ChatMessage(role="assistant", content="1 + 1 = 2")])
    code, message = await code_of(reward_pb2.ScoreStepsRequest(items=[long_tokens]))
    # 'user: ' + 400 + '\n' + 'assistant: ' + 9 + '\n' bytes = 428 tokens > 300.
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message == "items[0]: 428 PRM input tokens, more than limits.max_trajectory_tokens (300)"
    bad_seg = reward_pb2.StepsItem(conversation=conversation(test_records[0]), segmentation=reward_pb2.Segmentation(mode=reward_pb2.Segmentation.BY_DELIMITER))
    code, message = await code_of(reward_pb2.ScoreStepsRequest(items=[bad_seg]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "delimiter: empty" in message
    # An item without assistant steps is that item's INVALID_INPUT; the others are scored.
    no_steps = reward_pb2.StepsItem(id="x", conversation=[common_pb2.ChatMessage(role="user", content="hello")])
    fine = reward_pb2.StepsItem(id="y", conversation=conversation(test_records[0]))
    x, y = (await stub.ScoreSteps(reward_pb2.ScoreStepsRequest(items=[no_steps, fine]))).results
    assert x.status.code == common_pb2.ItemStatus.INVALID_INPUT and x.status.message == "no assistant step to score"
    assert len(x.scores) == 0 and y.status.code == common_pb2.ItemStatus.OK and len(y.scores) == len(test_records[0].steps)


async def test_prm_failures_are_error_statuses_and_counted(tmp_path):
    # A real misconfiguration: the model's vocabulary (120 ids) is smaller than its
    # tokenizer's, so any text with a byte above 't' (id 119) fails in the embedding.
    tokenizer = prm_train.byte_tokenizer()
    model = prm_train.tiny_scorer(tokenizer, hidden_size=16, layers=1, heads=2)
    model.resize_token_embeddings(120)
    prm_train.save_scorer(model, tokenizer, tmp_path / "broken", SETTINGS, {})
    cfg = RewardServiceConfig(server=ServerConfig(metrics_port=None, grace_s=0), prm=ScalarHeadPRMConfig(model=str(tmp_path / "broken")))
    built = await create_server(cfg)
    await built.start()
    labels = {"method": "ScoreSteps", "source": "prm", "code": "ERROR"}
    before = REGISTRY.get_sample_value("outrider_reward_item_errors_total", labels) or 0.0
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as channel:
            stub = reward_pb2_grpc.RewardServiceStub(channel)
            ok_item = reward_pb2.StepsItem(id="ok", conversation=[common_pb2.ChatMessage(role="assistant", content="12 + 7 = 19")])
            bad_item = reward_pb2.StepsItem(id="bad", conversation=[common_pb2.ChatMessage(role="user", content="hi"), common_pb2.ChatMessage(role="assistant", content="1")])
            ok, bad = (await stub.ScoreSteps(reward_pb2.ScoreStepsRequest(items=[ok_item, bad_item]))).results
    finally:
        await built.stop(0)
    assert ok.status.code == common_pb2.ItemStatus.OK and len(ok.scores) == 1
    assert bad.status.code == common_pb2.ItemStatus.ERROR and bad.status.source == "prm"
    assert bad.status.message.startswith("PRM failed: IndexError")
    assert len(bad.scores) == 0 and len(bad.rewards) == 0
    assert REGISTRY.get_sample_value("outrider_reward_item_errors_total", labels) == before + 1

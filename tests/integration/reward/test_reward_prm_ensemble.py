"""A PRM ensemble served over gRPC: combined scores and disagreement equal the members' own
scores combined by the formulas; a member scoring non-finite values is a typed ERROR."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
import torch

from outrider.clients.reward import RewardClient
from outrider.config import RewardServiceConfig, ServerConfig
from outrider.config.reward import EnsemblePRMConfig, ScalarHeadPRMConfig
from outrider.config.rollout import RewardSourceConfig
from outrider.envs.shaping import step_rewards
from outrider.proto.v1 import common_pb2, reward_pb2, reward_pb2_grpc, trajectory_pb2
from outrider.rollout.episodes import Episode, trajectory_of
from outrider.rollout.rewards import PRM_DISAGREEMENT, assign_rewards
from outrider.services.reward.prm import train as prm_train
from outrider.services.reward.prm.scalar_head import ScalarHeadPRM
from outrider.services.reward.server import create_server

OK, ERROR = common_pb2.ItemStatus.OK, common_pb2.ItemStatus.ERROR
SETTINGS = prm_train.TrainSettings(steps=1, batch_size=1, lr=1e-3, seed=0, threads=1)


def _save(root, name: str, seed: int, head=None):
    tokenizer = prm_train.byte_tokenizer()
    model = prm_train.tiny_scorer(tokenizer, hidden_size=32, layers=1, heads=2, seed=seed)
    if head is not None:
        with torch.no_grad():
            model.score.weight.fill_(head)
    return str(prm_train.save_scorer(model, tokenizer, root / name, SETTINGS, {}))


def _save_ascii_only(root) -> str:
    """A scorer whose embedding has rows for the 3 special and 128 ASCII byte ids only: a
    non-ASCII byte's id is out of range and its forward pass raises IndexError."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    tokenizer = prm_train.byte_tokenizer()
    config = LlamaConfig(vocab_size=3 + 128, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, num_labels=1, pad_token_id=tokenizer.pad_token_id, bos_token_id=None, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(4)
    return str(prm_train.save_scorer(LlamaForSequenceClassification(config), tokenizer, root / "ascii", SETTINGS, {}))


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Two random scorers (seeds 0 and 1), a scorer whose head is 0 (s_t = sigmoid(0) = 0.5
    at every step), one whose head is NaN (a corrupted checkpoint) and one that raises on
    non-ASCII text."""
    root = tmp_path_factory.mktemp("prms")
    return {
        "a": _save(root, "a", 0), "b": _save(root, "b", 1), "half": _save(root, "half", 2, head=0.0),
        "nan": _save(root, "nan", 3, head=float("nan")), "ascii": _save_ascii_only(root),
    }


CONVERSATIONS = [
    [("user", "What is 2 + 3?"), ("assistant", "2 + 3 = 5\n\nSo the answer is 5.")],
    [("user", "What is 7 - 4?"), ("assistant", "7 - 4 = 2\n\nThen 2 + 1 = 3\n\nAnswer: 3")],
]


def items() -> list[reward_pb2.StepsItem]:
    return [
        reward_pb2.StepsItem(id=str(i), conversation=[common_pb2.ChatMessage(role=r, content=c) for r, c in conv]) for i, conv in enumerate(CONVERSATIONS)
    ]


async def serve(paths: list[str], combine: str, k: float = 1.0):
    prm = EnsemblePRMConfig(members=[ScalarHeadPRMConfig(model=p, device="cpu") for p in paths], combine=combine, k=k)
    built = await create_server(RewardServiceConfig(server=ServerConfig(metrics_port=None, grace_s=0), prm=prm))
    await built.start()
    return built


async def score_steps(built) -> list[reward_pb2.StepScores]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as channel:
        return list((await reward_pb2_grpc.RewardServiceStub(channel).ScoreSteps(reward_pb2.ScoreStepsRequest(items=items()))).results)


def alone(path: str, mode: str = "delimiter") -> list[np.ndarray]:
    """A member's scores from its own model, outside the service (the service's default
    segmentation, or one step per assistant turn as the rollout asks)."""
    from outrider.proto.chat import Message
    from outrider.services.reward.prm.segmentation import segment

    prm = ScalarHeadPRM(path, device="cpu")
    out = []
    for conv in CONVERSATIONS:
        messages = [Message(role=r, content=c) for r, c in conv]
        out.append(prm.score([prm.encode(messages, segment(messages, mode, "\n\n"))])[0])
    return out


@pytest.mark.parametrize("combine", ["mean", "min", "lower_bound"])
async def test_served_ensemble_is_the_members_scores_combined(members, combine):
    paths = [members["a"], members["b"], members["half"]]
    built = await serve(paths, combine, k=1.5)
    try:
        results = await score_steps(built)
    finally:
        await built.stop(0)
    own = [alone(p) for p in paths]
    assert all(np.all(s == 0.5) for s in own[2])  # the zero head: sigmoid(0) at every step
    for item, result in enumerate(results):
        assert result.status.code == OK
        rows = np.stack([own[m][item] for m in range(3)])  # (3 members, T steps)
        assert rows.shape[1] == [2, 3][item]
        mean = rows.sum(0) / 3
        sigma = np.sqrt(((rows - mean) ** 2).sum(0) / 3)  # population std over members
        expected = {"mean": mean, "min": rows.min(0), "lower_bound": mean - 1.5 * sigma}[combine]
        assert np.array(result.scores) == pytest.approx(expected, abs=1e-6)
        assert np.array(result.rewards) == pytest.approx(step_rewards(list(result.scores), "difference"), abs=1e-12)
        assert result.disagreement == pytest.approx(sigma.mean(), abs=1e-6)
        assert result.disagreement > 0  # random members do disagree


async def test_a_member_scoring_nan_is_an_error_naming_it_not_a_drop(members):
    built = await serve([members["a"], members["nan"]], "mean")
    try:
        results = await score_steps(built)
    finally:
        await built.stop(0)
    for result in results:
        assert result.status.code == ERROR and result.status.source == "prm"
        assert "member 1 (scalar-head:" in result.status.message and "non-finite" in result.status.message
        assert not result.scores and not result.HasField("disagreement")


async def test_a_member_raising_on_one_item_fails_that_item_only(members):
    """The batch fails (MemberFailed); item by item, the ASCII conversations are scored by
    both members and the one with "é" is an ERROR that names the raising member."""
    built = await serve([members["a"], members["ascii"]], "mean")
    request = items() + [reward_pb2.StepsItem(id="accent", conversation=[common_pb2.ChatMessage(role="user", content="Café?"), common_pb2.ChatMessage(role="assistant", content="Oui.")])]
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as channel:
            results = list((await reward_pb2_grpc.RewardServiceStub(channel).ScoreSteps(reward_pb2.ScoreStepsRequest(items=request))).results)
    finally:
        await built.stop(0)
    own_a, own_ascii = alone(members["a"]), alone(members["ascii"])
    for item in range(2):
        assert results[item].status.code == OK
        assert np.array(results[item].scores) == pytest.approx((own_a[item] + own_ascii[item]) / 2, abs=1e-6)
    accent = results[2]
    assert accent.status.code == ERROR and not accent.scores
    assert "MemberFailed: member 1 (scalar-head:" in accent.status.message and "IndexError" in accent.status.message


async def test_disagreement_reaches_the_trajectory_as_a_component(members):
    built = await serve([members["a"], members["b"]], "mean")
    episodes = []
    for index, conv in enumerate(CONVERSATIONS[:1]):
        e = Episode(index=index, token_ids=[1, 2, 3], logprobs=[0.0, 0.0, 0.0], loss_mask=[False, True, True], prompt_length=1)
        e.turns = [trajectory_pb2.Turn(start=1, completion_length=2)]
        e.messages = [common_pb2.ChatMessage(role=r, content=c) for r, c in conv]
        e.done = True
        episodes.append(e)
    client = RewardClient(f"127.0.0.1:{built.port}")
    try:
        # rollout PRM steps are one per turn; the synchronous client runs off the event loop.
        await asyncio.to_thread(assign_rewards, common_pb2.Task(id="t", env="math"), episodes, RewardSourceConfig(steps="prm"), client)
        direct = await score_steps(built)
    finally:
        client.close()
        await built.stop(0)
    (trajectory,) = [trajectory_of(e) for e in episodes]
    assert trajectory.status.code == OK
    (component,) = trajectory.reward_components
    # By turn the answer is one step; the population std of two values is |a − b| / 2.
    (a,), (b,) = alone(members["a"], "turn")[0], alone(members["b"], "turn")[0]
    assert component.name == PRM_DISAGREEMENT and component.weight == 0.0
    assert component.value == pytest.approx(abs(a - b) / 2, abs=1e-6) and component.value > 0
    assert [s.score for s in trajectory.step_rewards] == pytest.approx([(a + b) / 2], abs=1e-6)
    assert direct[0].disagreement > 0

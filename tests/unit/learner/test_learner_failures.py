"""Infra-failed trajectories in a learner batch: out of group statistics, loss and shaping.

Real protobuf groups through build_batch and the learner's `advantages`; expected values
by hand (valid rewards 1, 0, 1, 1, 0, 0 have mean 1/2 and Bessel std sqrt(0.3)).
"""

from __future__ import annotations

import math

import pytest
import torch

from outrider.config import parse_config
from outrider.learner.algorithms import Algorithms
from outrider.learner.batch import build_batch
from outrider.learner.step import Scores, advantages
from outrider.proto.v1.common_pb2 import ItemStatus
from outrider.proto.v1.trajectory_pb2 import (
    INFRA_FAILURE_ENV_ERROR,
    INFRA_FAILURE_REWARD_ERROR,
    Trajectory,
    TrajectoryGroup,
    Turn,
)

PROMPT = [5, 6, 7]


def trajectory(reward: float, completion: int, failure: int = 0, solved: bool | None = None) -> Trajectory:
    ids = PROMPT + list(range(100, 100 + completion))
    return Trajectory(
        prompt_length=len(PROMPT),
        token_ids=ids,
        logprobs=[0.0] * len(PROMPT) + [-1.0] * completion,
        loss_mask=[False] * len(PROMPT) + [True] * completion,
        turns=[Turn(start=len(PROMPT), completion_length=completion)],
        outcome_reward=reward,
        solved=reward > 0 if solved is None else solved,
        status=ItemStatus(code=ItemStatus.ERROR if failure else ItemStatus.OK),
        infra_failure=failure,
    )


def eight_with_two_failed() -> TrajectoryGroup:
    rewards = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 5.0, 0.0]
    failures = {2: INFRA_FAILURE_ENV_ERROR, 6: INFRA_FAILURE_REWARD_ERROR}
    return TrajectoryGroup(
        group_id="g8", trajectories=[trajectory(r, 4 + i, failures.get(i, 0)) for i, r in enumerate(rewards)]
    )


def algos(**algorithm):
    return Algorithms.from_config(parse_config({"learner": {"algorithm": algorithm}}).learner.algorithm)


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo"])
def test_failed_rows_leave_the_group_and_get_no_advantage(name):
    batch = build_batch([eight_with_two_failed()])
    assert batch.valid.tolist() == [True, True, False, True, True, True, False, True]
    adv, _ = advantages(algos(advantage={"name": name}), batch, Scores(), 0.0)
    per_row = adv.advantages.sum(-1) / batch.mask.sum(-1)  # every policy token has the same value
    a = {"grpo": 0.5 / (math.sqrt(0.3) + 1e-6), "dr_grpo": 0.5, "rloo": 0.6}[name]
    assert per_row.tolist() == pytest.approx([a, -a, 0.0, a, a, -a, 0.0, -a], rel=1e-6)
    assert torch.equal(adv.advantages[~batch.valid], torch.zeros(2, adv.advantages.shape[1]))
    # The same six alone, in a batch of their own.
    six = TrajectoryGroup(group_id="g6", trajectories=[t for t in eight_with_two_failed().trajectories if not t.infra_failure])
    alone, _ = advantages(algos(advantage={"name": name}), build_batch([six]), Scores(), 0.0)
    kept = adv.advantages[batch.valid]
    assert torch.equal(kept[:, : alone.advantages.shape[1]], alone.advantages)


def test_failed_rows_have_no_loss_weight():
    batch = build_batch([eight_with_two_failed()])
    trained = batch.only_rows(batch.valid)
    assert trained.mask[~batch.valid].sum() == 0 and torch.equal(trained.mask[batch.valid], batch.mask[batch.valid])


def test_a_group_below_min_valid_contributes_nothing():
    # min_valid 7 > 6 valid episodes: the whole group is out, no row has an advantage.
    adv, metrics = advantages(algos(min_valid=7), build_batch([eight_with_two_failed()]), Scores(), 0.0)
    assert not adv.advantages.any() and "advantage_mean" not in metrics


def test_kimi_length_ignores_the_failed_episodes_lengths():
    # Valid episodes have completions of 4, 5, 7, 8, 9, 11 tokens (rows 0, 1, 3, 4, 5, 7;
    # policy targets are the completion minus nothing: all completion tokens are targets).
    # min 4, max 11, span 7. Dr. GRPO of R' = R + λ or R + min(0, λ):
    #   row 0 (correct, 4):  1 + 0.5            = 1.5
    #   row 1 (wrong, 5):    0 + min(0, 0.5 − 1/7) = 0
    #   row 3 (correct, 7):  1 + 0.5 − 3/7      = 1.0714285714
    #   row 4 (correct, 8):  1 + 0.5 − 4/7      = 0.9285714286
    #   row 5 (wrong, 9):    0 + 0.5 − 5/7      = −0.2142857143
    #   row 7 (wrong, 11):   0 + 0.5 − 1        = −0.5
    # The failed row 6 (10 tokens) is not part of min/max, nor of the mean.
    shaped = [1.5, 0.0, 1 + 0.5 - 3 / 7, 1 + 0.5 - 4 / 7, 0.5 - 5 / 7, -0.5]
    mean = sum(shaped) / 6
    batch = build_batch([eight_with_two_failed()])
    adv, metrics = advantages(
        algos(advantage={"name": "dr_grpo"}, reward_shaping=[{"name": "kimi_length"}]), batch, Scores(), 0.0
    )
    per_row = (adv.advantages.sum(-1) / batch.mask.sum(-1))[batch.valid]
    assert per_row.tolist() == pytest.approx([s - mean for s in shaped], abs=1e-6)
    assert metrics["reward_shaped_mean"] == pytest.approx(mean, abs=1e-6)
    # The recorded rewards are untouched.
    assert batch.rewards.tolist() == [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 5.0, 0.0]

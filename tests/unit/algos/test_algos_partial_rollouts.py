"""Partial rollouts in the learner: per-token versions from Turn.segments, and `tis_partial`
weighting each token against the version that sampled it (hand-derived numbers)."""

from __future__ import annotations

import math

import pytest
import torch

from outrider.learner.algos import LOSS_TRANSFORMS, POLICY_LOSSES, PolicyLossInputs
from outrider.learner.batch import build_batch, turn_versions
from outrider.proto.v1.trajectory_pb2 import Segment, Trajectory, TrajectoryGroup, Turn
from outrider.transport import group_problem

F64 = torch.float64


def segmented_group() -> TrajectoryGroup:
    """Tokens: 2 prompt | turn 0: 5 sampled, 3 by version 4 then 2 by version 6 | 2 env |
    turn 1: 2 sampled by version 6 in one call."""
    turns = [
        Turn(start=2, completion_length=5, observation_length=2, policy_version=4,
             segments=[Segment(length=3, policy_version=4), Segment(length=2, policy_version=6)]),
        Turn(start=9, completion_length=2, policy_version=6),
    ]
    mask = [False, False] + [True] * 5 + [False, False] + [True] * 2
    logprobs = [0.0, 0.0, -1.0, -1.0, -1.0, -0.5, -0.5, 0.0, 0.0, -0.25, -0.25]
    trajectory = Trajectory(trajectory_id="g/0", prompt_length=2, token_ids=list(range(11)), logprobs=logprobs,
                            loss_mask=mask, turns=turns, outcome_reward=1.0)
    return TrajectoryGroup(group_id="g", trajectories=[trajectory], policy_version=4)


def test_segments_become_per_token_versions_aligned_with_targets():
    group = segmented_group()
    assert group_problem(group) is None
    assert turn_versions(group.trajectories[0].turns[0]) == [(2, 5, 4), (5, 7, 6)]
    assert turn_versions(group.trajectories[0].turns[1]) == [(9, 11, 6)]
    batch = build_batch([group])
    # Target j is token j + 1: tokens 2-4 (version 4) are targets 1-3, tokens 5-6 (version 6)
    # targets 4-5, the env's tokens 7-8 targets 6-7 (no version), tokens 9-10 targets 8-9.
    assert batch.token_versions.tolist() == [[0, 4, 4, 4, 6, 6, 0, 0, 6, 6]]
    # The sequence's version stays its oldest (the staleness check).
    assert batch.policy_version.tolist() == [4]
    # At learner version 6 the first segment is 2 versions old, the rest current.
    assert batch.rollout_lags(6).tolist() == [[0, 2, 2, 2, 0, 0, 0, 0, 0, 0]]
    assert batch.select([0]).token_versions.tolist() == batch.token_versions.tolist()


def test_bad_segments_are_refused_by_the_bus():
    group = segmented_group()
    group.trajectories[0].turns[0].segments[1].length = 3
    assert "segments: lengths sum to 6 != completion_length=5" in group_problem(group)
    group = segmented_group()
    group.trajectories[0].turns[0].policy_version = 6
    assert "policy_version=6 != its first segment's 4" in group_problem(group)


def _inputs(lags: list[int]) -> PolicyLossInputs:
    old = torch.tensor([[-1.0, -1.0, -0.5, -2.0]], dtype=F64)
    rollout = torch.tensor([[-1.5, -0.2, -0.5, -1.0]], dtype=F64)
    return PolicyLossInputs(old.clone().requires_grad_(), old, torch.ones(1, 4, dtype=F64), torch.ones(1, 4, dtype=torch.bool),
                            rollout_logprobs=rollout, rollout_lags=torch.tensor([lags]))


def test_tis_partial_weights_each_token_against_its_own_sampler():
    entry = LOSS_TRANSFORMS.get("tis_partial")
    out = entry(_inputs([2, 2, 0, 0]), entry.make_params(cap=2.0))
    # log w = old − rollout = 0.5, −0.8, 0, −1: w = e^0.5 (< 2), e^−0.8, 1, e^−1.
    expected = [math.exp(0.5), math.exp(-0.8), 1.0, math.exp(-1.0)]
    assert out.inputs.is_weights[0].tolist() == pytest.approx(expected, abs=1e-12)
    assert out.inputs.mask.tolist() == [[True] * 4]
    assert float(out.metrics["rollout_lag_mean"]) == pytest.approx(1.0, abs=1e-12)  # (2 + 2 + 0 + 0) / 4
    assert float(out.metrics["rollout_lag_max"]) == 2.0
    assert float(out.metrics["stale_token_frac"]) == 0.0
    assert float(out.metrics["tis_weight_mean"]) == pytest.approx(sum(expected) / 4, abs=1e-12)


def test_tis_partial_drops_segments_older_than_max_lag_and_caps():
    entry = LOSS_TRANSFORMS.get("tis_partial")
    out = entry(_inputs([2, 2, 0, 1]), entry.make_params(cap=1.5, max_lag=1))
    # Tokens 0 and 1 are 2 versions old > K = 1: out of the loss. Token 0's weight e^0.5 ≈ 1.65 is capped at 1.5.
    assert out.inputs.mask.tolist() == [[False, False, True, True]]
    assert out.inputs.is_weights[0].tolist() == pytest.approx([1.5, math.exp(-0.8), 1.0, math.exp(-1.0)], abs=1e-12)
    assert float(out.metrics["stale_token_frac"]) == 0.5
    assert float(out.metrics["tis_capped_frac"]) == 0.25


def test_tis_partial_needs_the_lags():
    entry = LOSS_TRANSFORMS.get("tis_partial")
    inputs = _inputs([0, 0, 0, 0]).replace(rollout_lags=None)
    with pytest.raises(ValueError, match="rollout_lags"):
        entry(inputs, entry.default_params())


def test_a_stale_segment_changes_the_policy_gradient_as_weighted():
    """Through `pg` (loss −A·w·log π): the gradient on each token is −A·w_t, and 0 on a dropped one."""
    transform, loss = LOSS_TRANSFORMS.get("tis_partial"), POLICY_LOSSES.get("pg")
    inputs = _inputs([2, 2, 0, 1])
    out = transform(inputs, transform.make_params(cap=2.0, max_lag=1)).inputs
    total = loss(out, loss.default_params()).loss.sum()
    total.backward()
    assert inputs.logprobs.grad[0].tolist() == pytest.approx([0.0, 0.0, -1.0, -math.exp(-1.0)], abs=1e-12)

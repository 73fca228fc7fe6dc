"""The sampler's truncated support: hand values for top-k / top-p / temperature, and the batch."""

from __future__ import annotations

import math

import pytest
import torch

from outrider.learner.algos.sampling_support import keep_mask, truncated_entropy, truncated_logprobs, truncates
from outrider.learner.batch import build_batch
from outrider.proto.v1.trajectory_pb2 import SamplingSupport, Trajectory, TrajectoryGroup, Turn

# One position, probabilities 0.5, 0.3, 0.2 (logits = their logs: softmax gives them back).
LOGITS = torch.tensor([[math.log(0.5), math.log(0.3), math.log(0.2)]], dtype=torch.float64)


def _keep(temperature, top_k, top_p):
    return keep_mask(LOGITS, torch.tensor([temperature]), torch.tensor([top_k]), torch.tensor([top_p], dtype=torch.float64))


def test_top_k_renormalises_over_the_k_most_likely():
    keep = _keep(1.0, 2, 1.0)
    assert keep.tolist() == [[True, True, False]]
    # π_S(0) = 0.5 / 0.8, π_S(1) = 0.3 / 0.8.
    lp = truncated_logprobs(LOGITS.expand(2, 3), torch.tensor([0, 1]), keep.expand(2, 3))
    assert lp.tolist() == pytest.approx([math.log(0.625), math.log(0.375)], abs=1e-15)
    h = truncated_entropy(LOGITS, keep)
    assert h.item() == pytest.approx(-(0.625 * math.log(0.625) + 0.375 * math.log(0.375)), abs=1e-15)
    # A token outside S has probability 0.
    assert truncated_logprobs(LOGITS, torch.tensor([2]), keep).item() == float("-inf")


def test_top_p_set_is_chosen_at_the_sampling_temperature():
    # T = 1, top_p = 0.6: mass before token 1 is 0.5 < 0.6 (kept), before token 2 0.8 (dropped).
    assert _keep(1.0, 0, 0.6).tolist() == [[True, True, False]]
    # T = 0.5: p ∝ (0.25, 0.09, 0.04) = (0.658, 0.237, 0.105); the mass before token 1 is
    # already 0.658 >= 0.6, so only token 0 stays: log π_S(0) = 0.
    keep = _keep(0.5, 0, 0.6)
    assert keep.tolist() == [[True, False, False]]
    assert truncated_logprobs(LOGITS, torch.tensor([0]), keep).item() == 0.0
    assert truncated_entropy(LOGITS, keep).item() == 0.0


def test_greedy_or_untruncated_rows_keep_the_whole_vocabulary():
    assert truncates(torch.tensor([0.0, 1.0, 1.0, 0.7]), torch.tensor([5, 0, 0, 3]), torch.tensor([0.5, 1.0, 0.9, 1.0])).tolist() == [
        False, False, True, True
    ]
    assert _keep(0.0, 1, 0.5).tolist() == [[True, True, True]]
    assert _keep(1.0, 0, 1.0).tolist() == [[True, True, True]]


def test_the_batch_places_each_turns_support_on_its_targets():
    # prompt [1, 2] | turn 1 [3, 4] (top-k 5, T 0.7) | observation [5] | turn 2 [6] (full vocabulary)
    traj = Trajectory(
        trajectory_id="g/0", prompt_length=2, token_ids=[1, 2, 3, 4, 5, 6], logprobs=[0.0] * 6,
        loss_mask=[False, False, True, True, False, True],
        turns=[
            Turn(start=2, completion_length=2, observation_length=1,
                 sampling=SamplingSupport(temperature=0.7, top_k=5, top_p=0.9)),
            Turn(start=5, completion_length=1),
        ],
    )
    batch = build_batch([TrajectoryGroup(group_id="g", trajectories=[traj])])
    # Token k is target k − 1: tokens 3 and 4 are targets 1 and 2.
    expected = [[1.0, 0.0, 1.0], [0.7, 5.0, 0.9], [0.7, 5.0, 0.9], [1.0, 0.0, 1.0], [1.0, 0.0, 1.0]]
    assert batch.sampling.shape == (1, 5, 3)
    assert torch.allclose(batch.sampling[0], torch.tensor(expected), atol=1e-7, rtol=0)
    assert batch.select([0]).sampling.tolist() == batch.sampling.tolist()
    plain = Trajectory()
    plain.CopyFrom(traj)
    plain.turns[0].ClearField("sampling")
    assert build_batch([TrajectoryGroup(group_id="g", trajectories=[plain])]).sampling is None


def test_the_bus_refuses_a_turn_with_an_impossible_support():
    from outrider.transport import group_problem

    traj = Trajectory(
        trajectory_id="g/0", prompt_length=1, token_ids=[1, 2], logprobs=[0.0, -0.1], loss_mask=[False, True],
        turns=[Turn(start=1, completion_length=1, sampling=SamplingSupport(temperature=1.0, top_k=5, top_p=0.0))],
    )
    problem = group_problem(TrajectoryGroup(group_id="g", trajectories=[traj]))
    assert problem is not None and "turns[0].sampling" in problem and "top_p=0.0" in problem
    traj.turns[0].sampling.top_p = 1.0
    assert group_problem(TrajectoryGroup(group_id="g", trajectories=[traj])) is None

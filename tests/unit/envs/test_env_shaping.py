"""Step-reward shaping (`outrider.envs.shaping`): hand values, its users, and the
learner's token-layout form of the same `difference` rule."""

from __future__ import annotations

import random
from typing import get_args

import pytest
import torch

from outrider.config.reward import RewardServiceConfig
from outrider.config.rollout import RewardSourceConfig
from outrider.envs import shaping
from outrider.envs.shaping import SHAPINGS, step_rewards
from outrider.learner.algos.process_rewards import step_rewards_from_scores
from outrider.rollout import rewards as rollout_rewards
from outrider.services.reward import core as reward_core

S = [0.2, 0.5, 0.4]


def test_hand_values():
    # Differences with s_0 = 0: 0.2 − 0, 0.5 − 0.2, 0.4 − 0.5 = 0.2, 0.3, −0.1; they telescope to s_T = 0.4.
    assert step_rewards(S, "difference") == pytest.approx([0.2, 0.3, -0.1], abs=1e-15)
    assert sum(step_rewards(S, "difference")) == pytest.approx(0.4, abs=1e-15)
    assert step_rewards(S, "min") == [0.0, 0.0, 0.2]  # the weakest step, at the end
    assert step_rewards(S, "last") == [0.0, 0.0, 0.4]
    assert step_rewards(S, "raw") == S
    assert step_rewards([0.7], "difference") == [0.7]  # one step: s_1 − s_0 = s_1


def test_empty_trajectories_and_unknown_names():
    for name in SHAPINGS:
        assert step_rewards([], name) == []
    with pytest.raises(ValueError, match="unknown shaping 'exp'; valid: difference, min, last, raw"):
        step_rewards(S, "exp")
    with pytest.raises(ValueError, match="unknown shaping"):
        step_rewards([], "exp")


def test_the_users_call_this_one():
    assert rollout_rewards.step_rewards is shaping.step_rewards
    assert reward_core.step_rewards is shaping.step_rewards


def test_config_names_are_the_modules_names():
    assert get_args(RewardServiceConfig.model_fields["shaping"].annotation) == SHAPINGS
    assert set(get_args(RewardSourceConfig.model_fields["shaping"].annotation)) <= set(SHAPINGS)


def test_the_learners_token_layout_form_agrees():
    # step_rewards_from_scores is the vectorized (B, T) form of `difference`: at each step end
    # it must give exactly this module's r_t for that row's step scores (loop reference).
    gen = torch.Generator().manual_seed(0)
    scores = torch.rand(8, 30, generator=gen, dtype=torch.float64)
    steps = torch.rand(8, 30, generator=gen) > 0.6
    steps[0] = False  # a row without steps
    got = step_rewards_from_scores(scores, steps)
    for row in range(8):
        ends = steps[row].nonzero().flatten().tolist()
        expected = step_rewards(scores[row, ends].tolist(), "difference")
        assert got[row, ends].tolist() == pytest.approx(expected, abs=1e-15)
        assert got[row, ~steps[row]].abs().max().item() == 0.0


def test_difference_is_invariant_to_a_shift_only_in_its_first_reward():
    # r_t for t ≥ 2 depends on differences only: adding c to every s_t changes r_1 alone (by c).
    rng = random.Random(0)
    s = [rng.random() for _ in range(6)]
    shifted = step_rewards([x + 0.5 for x in s], "difference")
    base = step_rewards(s, "difference")
    assert shifted[0] == pytest.approx(base[0] + 0.5, abs=1e-15)
    assert shifted[1:] == pytest.approx(base[1:], abs=1e-15)

"""Outcome-reward shaping: Kimi k1.5's length penalty and the Long2Short reward.

Expected values are worked out by hand in the comments from the papers' formulas.
"""

from __future__ import annotations

import pytest
import torch

from outrider.config import ConfigError, parse_config
from outrider.learner.algorithms import Algorithms
from outrider.learner.algos import REWARD_SHAPINGS, RewardShapingInputs, shape_on_rows
from outrider.learner.algos.reward_shaping import kimi_length_reward

F64 = torch.float64


def shaping_inputs(rewards, lengths, correct, groups=None, step=0) -> RewardShapingInputs:
    b = len(rewards)
    return RewardShapingInputs(
        rewards=torch.tensor(rewards, dtype=F64),
        lengths=torch.tensor(lengths, dtype=torch.long),
        correct=torch.tensor(correct, dtype=torch.bool),
        group_index=torch.zeros(b, dtype=torch.long) if groups is None else torch.tensor(groups),
        step=step,
    )


def shape(name, x, **params):
    entry = REWARD_SHAPINGS.get(name)
    return entry(x, entry.make_params(**params))


def test_kimi_length_reward_hand_values():
    # Group 0: lengths 10..40, min 10, max 40, span 30; λ = 0.5 − (len − 10)/30
    #   = 0.5, 1/6, −1/6, −0.5. Correct ones get λ, incorrect ones min(0, λ).
    # Group 1: an incorrect shortest response gets min(0, 0.5) = 0, never a bonus;
    #   the correct longest one gets −0.5.
    # Group 2: equal lengths -> 0 for everyone, correct or not.
    x = shaping_inputs(
        rewards=[1, 1, 0, 0, 0, 1, 1, 0],
        lengths=[10, 20, 30, 40, 5, 25, 7, 7],
        correct=[True, True, False, False, False, True, True, False],
        groups=[0, 0, 0, 0, 1, 1, 2, 2],
    )
    got = kimi_length_reward(x.lengths, x.correct, x.group_index)
    assert got.tolist() == pytest.approx([0.5, 1 / 6, -1 / 6, -0.5, 0.0, -0.5, 0.0, 0.0], abs=1e-15)
    # As a shaping: R + w · len_reward, w = 0.5.
    shaped = shape("kimi_length", x, weight=0.5)
    assert shaped.tolist() == pytest.approx([1.25, 1 + 1 / 12, -1 / 12, -0.25, 0.0, 0.75, 1.0, 0.0], abs=1e-15)


def test_kimi_warm_up_leaves_rewards_alone_until_its_step():
    x = shaping_inputs([1.0, 1.0], [10, 30], [True, True], step=4)
    assert torch.equal(shape("kimi_length", x, warmup_steps=5), x.rewards)
    x = shaping_inputs([1.0, 1.0], [10, 30], [True, True], step=5)
    # λ = 0.5 and −0.5.
    assert shape("kimi_length", x, warmup_steps=5).tolist() == [1.5, 0.5]


def test_long2short_hand_values():
    # L = 100, α = 0.2: R' = R·[n ≤ L] − 0.2·min(n, L)/100.
    x = shaping_inputs(rewards=[1, 0, 1, 1, 0], lengths=[50, 50, 150, 100, 0], correct=[True, False, True, True, False])
    got = shape("long2short", x, alpha=0.2, budget=100)
    # 1 − 0.1; 0 − 0.1; over budget: 0 − 0.2; at the budget: 1 − 0.2; empty: 0.
    assert got.tolist() == pytest.approx([0.9, -0.1, -0.2, 0.8, 0.0], abs=1e-15)


def test_long2short_any_correct_in_budget_beats_any_incorrect_when_alpha_below_one():
    lengths = list(range(0, 101, 5))
    correct = shape("long2short", shaping_inputs([1.0] * len(lengths), lengths, [True] * len(lengths)), alpha=0.99, budget=100)
    wrong = shape("long2short", shaping_inputs([0.0] * len(lengths), lengths, [False] * len(lengths)), alpha=0.99, budget=100)
    assert correct.min() > wrong.max()


def test_shaping_skips_infra_failed_rows():
    # Row 3 failed after 1000 tokens: with it, span = 990 and every λ shrinks; without
    # it, lengths 10, 20, 30 give λ = 0.5, 0, −0.5 (all correct).
    x = shaping_inputs([1, 1, 1, 0], [10, 20, 30, 1000], [True, True, True, False])
    entry = REWARD_SHAPINGS.get("kimi_length")
    got = shape_on_rows(lambda y: entry(y, entry.default_params()), x, torch.tensor([True, True, True, False]))
    assert got.tolist() == pytest.approx([1.5, 1.0, 0.5, 0.0], abs=1e-15)


def test_shapings_are_configured_by_name_and_checked_at_load_time():
    cfg = parse_config(
        {"learner": {"algorithm": {"reward_shaping": [{"name": "kimi_length", "params": {"weight": 0.5}}, {"name": "long2short"}], "min_valid": 3}}}
    )
    algos = Algorithms.from_config(cfg.learner.algorithm)
    assert [c.entry.name for c in algos.reward_shapings] == ["kimi_length", "long2short"]
    assert algos.reward_shapings[0].params.weight == 0.5 and algos.min_valid == 3
    with pytest.raises(ConfigError) as error:
        parse_config({"learner": {"algorithm": {"reward_shaping": [{"name": "long2short", "params": {"budget": 0}}]}}})
    ((path, message),) = error.value.problems
    assert path == "learner.algorithm.reward_shaping" and "long2short.budget=0 must be > 0" in message

"""Infra-failure-aware group statistics: failed episodes leave their group, exactly.

A group of 8 with 2 episodes cut short by infrastructure must give the other 6 the
advantages a group of those 6 gets. The failed rows carry the reward 0 a naive pipeline
would have written, so that any leak into a group statistic changes the numbers.
Expected values are derived by hand in the comments.
"""

from __future__ import annotations

import math

import pytest
import torch

from outrider.learner.algos import ADVANTAGE_ESTIMATORS, AdvantageInputs, enough_valid, estimate_on_rows, trainable_rows

F64 = torch.float64
VALID_REWARDS = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0]
# Rows 2 and 6 failed; their "rewards" are not measurements.
EIGHT = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
FAILED = [2, 6]
KEEP = torch.tensor([i not in FAILED for i in range(8)])


def inputs(rewards: list[float], tokens: int = 3, requires=frozenset(), rows=None) -> AdvantageInputs:
    b = len(rewards)
    rows = list(range(b)) if rows is None else rows
    gen = torch.Generator().manual_seed(0)
    # Per-row values and step rewards drawn once for all 8 rows, then picked, so that the
    # six valid rows carry the same ones in both batches.
    values = torch.randn(8, tokens, generator=gen, dtype=F64)[rows]
    step_mask = torch.zeros(b, tokens, dtype=F64)
    step_mask[:, 1] = step_mask[:, -1] = 1.0
    token_rewards = torch.rand(8, tokens, generator=gen, dtype=F64)[rows] * step_mask
    return AdvantageInputs(
        rewards=torch.tensor(rewards, dtype=F64),
        mask=torch.ones(b, tokens, dtype=F64),
        group_index=torch.zeros(b, dtype=torch.long),
        values=values if "values" in requires else None,
        token_rewards=token_rewards if "token_rewards" in requires else None,
        step_mask=step_mask if "step_mask" in requires else None,
    )


def run(name: str):
    entry = ADVANTAGE_ESTIMATORS.get(name)
    return lambda x: entry(x, entry.default_params())


@pytest.mark.parametrize("name", sorted(ADVANTAGE_ESTIMATORS.names()))
def test_eight_with_two_failed_equal_the_six_alone(name):
    estimate = run(name)
    requires = ADVANTAGE_ESTIMATORS.get(name).requires
    with_failures = estimate_on_rows(estimate, inputs(EIGHT, requires=requires), KEEP)
    alone = estimate(inputs(VALID_REWARDS, requires=requires, rows=KEEP.nonzero().squeeze(-1).tolist()))
    assert torch.equal(with_failures.advantages[KEEP], alone.advantages)
    assert torch.equal(with_failures.returns[KEEP], alone.returns)
    # Failed rows: no advantage (hence no gradient under any loss) and no value target.
    assert torch.equal(with_failures.advantages[~KEEP], torch.zeros(2, 3, dtype=F64))
    assert torch.equal(with_failures.returns[~KEEP], torch.zeros(2, 3, dtype=F64))
    # The failed rows' rewards really would have changed the result (except for plain
    # REINFORCE: without a baseline, no other row enters a sample's advantage).
    if name != "reinforce":
        naive = estimate(inputs(EIGHT, requires=requires)).advantages[KEEP]
        assert not torch.allclose(naive, alone.advantages)


def test_hand_values_of_the_six():
    # Valid rewards 1,0,1,1,0,0 (rows 0,1,3,4,5,7): mean 1/2; Bessel std sqrt(6·¼/5) = sqrt(0.3).
    grpo = estimate_on_rows(run("grpo"), inputs(EIGHT), KEEP).advantages[:, 0]
    a = 0.5 / (math.sqrt(0.3) + 1e-6)
    assert grpo.tolist() == pytest.approx([a, -a, 0.0, a, a, -a, 0.0, -a], abs=1e-12)
    # Dr. GRPO: s − mean = ±1/2.
    dr = estimate_on_rows(run("dr_grpo"), inputs(EIGHT), KEEP).advantages[:, 0]
    assert dr.tolist() == pytest.approx([0.5, -0.5, 0.0, 0.5, 0.5, -0.5, 0.0, -0.5], abs=1e-12)
    # RLOO: a success's 5 others hold 2 successes: 1 − 2/5; a failure's hold 3: 0 − 3/5.
    rloo = estimate_on_rows(run("rloo"), inputs(EIGHT), KEEP).advantages[:, 0]
    assert rloo.tolist() == pytest.approx([0.6, -0.6, 0.0, 0.6, 0.6, -0.6, 0.0, -0.6], abs=1e-12)


def test_failed_rows_leave_only_their_own_group():
    # Two groups; the failure in group 0 must not touch group 1's advantages.
    x = AdvantageInputs(
        rewards=torch.tensor([1.0, 0.0, 9.0, 1.0, 0.0, 0.0], dtype=F64),
        mask=torch.ones(6, 2, dtype=F64),
        group_index=torch.tensor([0, 0, 0, 1, 1, 1]),
    )
    keep = torch.tensor([True, True, False, True, True, True])
    out = estimate_on_rows(run("dr_grpo"), x, keep).advantages[:, 0]
    # Group 0 without row 2: mean 1/2 -> ±1/2. Group 1: mean 1/3 -> 2/3, −1/3, −1/3.
    assert out.tolist() == pytest.approx([0.5, -0.5, 0.0, 2 / 3, -1 / 3, -1 / 3], abs=1e-12)


def test_min_valid_drops_a_group_whole():
    valid = torch.tensor([True, False, False, True, True, False, True])
    groups = torch.tensor([0, 0, 0, 1, 1, 1, 2])
    # Group 0 keeps 1 valid episode, group 1 keeps 2; group 2 (one sample) lost nothing.
    assert enough_valid(valid, groups, 2).tolist() == [False, False, False, True, True, True, True]
    assert trainable_rows(valid, groups, 2).tolist() == [False, False, False, True, True, False, True]
    assert trainable_rows(valid, groups, 1).tolist() == valid.tolist()
    # A group without failures is never dropped, whatever its size.
    assert trainable_rows(valid, groups, 3).tolist() == [False] * 6 + [True]


def test_nothing_kept_gives_zeros_without_calling_the_estimator():
    def boom(_):
        raise AssertionError("the estimator ran on an empty selection")

    out = estimate_on_rows(boom, inputs([1.0, 0.0]), torch.tensor([False, False]))
    assert torch.equal(out.advantages, torch.zeros(2, 3, dtype=F64))

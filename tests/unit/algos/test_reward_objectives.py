"""Weighted sums, Lagrangian penalties, dual ascent and ensemble rules on hand-derived numbers."""

from __future__ import annotations

import math

import pytest
import torch

from outrider.learner.algos.reward_objectives import (
    combine_ensemble,
    constraint_violations,
    dual_ascent,
    ensemble_disagreement,
    lagrangian_reward,
    weighted_sum,
)

F64 = torch.float64


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=F64)


def test_weighted_sum():
    # Row 0: 2·1 − 1·0.5 = 1.5; row 1: 2·0 − 1·(−1) = 1.
    assert torch.allclose(weighted_sum(t([[1.0, 0.5], [0.0, -1.0]]), t([2.0, -1.0])), t([1.5, 1.0]), atol=1e-12)


def test_violations_signs_and_penalty():
    values = t([[0.7, 0.2], [0.3, 0.9]])
    # Column 0: value ≤ 0.5, g = r − 0.5 → 0.2, −0.2. Column 1: value ≥ 0.4, g = 0.4 − r → 0.2, −0.5.
    g = constraint_violations(values, t([0.5, 0.4]), torch.tensor([False, True]))
    assert torch.allclose(g, t([[0.2, 0.2], [-0.2, -0.5]]), atol=1e-12)
    # λ = (2, 3): row 0 pays 2·0.2 + 3·0.2 = 1.0 → 1 − 1 = 0; row 1 violates nothing → 0.5 unchanged.
    assert torch.allclose(lagrangian_reward(t([1.0, 0.5]), g, t([2.0, 3.0])), t([0.0, 0.5]), atol=1e-12)
    # Row 0 does not carry constraint 1: only 2·0.2 is subtracted.
    present = torch.tensor([[True, False], [True, True]])
    assert torch.allclose(lagrangian_reward(t([1.0, 0.5]), g, t([2.0, 3.0]), present), t([0.6, 0.5]), atol=1e-12)


def test_dual_ascent_rises_on_violation_and_decays_to_zero_when_held():
    lam = t([0.0])
    seen = []
    for _ in range(3):  # mean violation 0.2, η = 0.5: +0.1 a step
        lam = dual_ascent(lam, t([0.2]), lr=0.5, max_value=100.0)
        seen.append(float(lam))
    assert seen == pytest.approx([0.1, 0.2, 0.3], abs=1e-12)
    seen = []
    for _ in range(5):  # the constraint now holds with slack 0.2: −0.1 a step, floored at 0
        lam = dual_ascent(lam, t([-0.2]), lr=0.5, max_value=100.0)
        seen.append(float(lam))
    assert seen == pytest.approx([0.2, 0.1, 0.0, 0.0, 0.0], abs=1e-12)
    assert float(lam) == 0.0
    # The cap: 0.3 + 0.5·10 = 5.3 is clipped to λ_max = 1.
    assert float(dual_ascent(t([0.3]), t([10.0]), lr=0.5, max_value=1.0)) == 1.0


SCORES = t([[0.2, 0.9], [0.4, 0.5], [0.6, 0.7]])  # 3 members × 2 items


def test_ensemble_rules_on_constructed_scores():
    # Column means: (0.2+0.4+0.6)/3 = 0.4, (0.9+0.5+0.7)/3 = 0.7; minima 0.2, 0.5.
    assert torch.allclose(combine_ensemble(SCORES, "mean"), t([0.4, 0.7]), atol=1e-12)
    assert torch.allclose(combine_ensemble(SCORES, "min"), t([0.2, 0.5]), atol=1e-12)
    # Deviations ±0.2 and 0 in both columns: population std √(0.08/3).
    sigma = math.sqrt(0.08 / 3)
    assert torch.allclose(ensemble_disagreement(SCORES), t([sigma, sigma]), atol=1e-12)
    assert torch.allclose(combine_ensemble(SCORES, "lower_bound", k=2.0), t([0.4 - 2 * sigma, 0.7 - 2 * sigma]), atol=1e-12)
    # Members that agree: no disagreement, and the lower bound is the mean.
    same = t([[0.3, 0.8], [0.3, 0.8]])
    assert torch.equal(ensemble_disagreement(same), t([0.0, 0.0]))
    assert torch.allclose(combine_ensemble(same, "lower_bound", k=5.0), t([0.3, 0.8]), atol=1e-12)


def test_ensemble_rule_errors_name_the_valid_rules():
    with pytest.raises(ValueError, match="valid: mean, min, lower_bound"):
        combine_ensemble(SCORES, "median")
    with pytest.raises(ValueError, match="members, items"):
        combine_ensemble(t([0.1, 0.2]), "mean")


def test_disagreement_kl_scale():
    from outrider.learner.algos.reward_objectives import disagreement_kl_scale

    # d₀ = 0.1, gain 2: at d = 0.15 the scale is 1 + 2·(1.5 − 1) = 2; at or below d₀ it is 1.
    assert disagreement_kl_scale(0.15, 0.1, 2.0) == pytest.approx(2.0, abs=1e-12)
    assert disagreement_kl_scale(0.1, 0.1, 2.0) == 1.0 and disagreement_kl_scale(0.05, 0.1, 2.0) == 1.0
    assert disagreement_kl_scale(0.3, 0.0, 2.0) == 1.0  # no baseline yet

"""Confidence intervals over seeds: the t quantile against closed forms and the
interval arithmetic on synthetic arm results, by hand."""

from __future__ import annotations

import math

import pytest

from outrider.experiment.results import arm_summary, curve_band
from outrider.experiment.stats import mean_interval, t_cdf, t_quantile


def test_t_quantile_closed_forms():
    # df = 1 (Cauchy): t_p = tan(π(p − ½));  df = 2: t_p = (2p − 1)/√(2p(1 − p)).
    for p in (0.6, 0.9, 0.975, 0.995):
        assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)
        assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9)
    assert t_quantile(0.975, 1) == pytest.approx(12.7062047, abs=1e-6)
    assert t_quantile(0.025, 2) == pytest.approx(-4.3026527, abs=1e-6)
    # Large df tends to the normal quantile 1.959964.
    assert t_quantile(0.975, 100_000) == pytest.approx(1.959964, abs=1e-4)
    # df = 4 from tables: 2.776445.
    assert t_quantile(0.975, 4) == pytest.approx(2.776445, abs=1e-6)
    assert t_cdf(0.0, 7) == pytest.approx(0.5, abs=1e-15)


def test_mean_interval_of_three_seeds_by_hand():
    # x = 0.2, 0.4, 0.6: mean 0.4; s² = (0.04 + 0 + 0.04)/2 = 0.04, s = 0.2;
    # t_{0.975, 2} = 0.95/√(2·0.975·0.025) = 4.302653; half = 4.302653·0.2/√3 = 0.496828.
    interval = mean_interval([0.2, 0.4, 0.6])
    assert interval.n == 3 and interval.mean == pytest.approx(0.4, abs=1e-15)
    assert interval.std == pytest.approx(0.2, abs=1e-15)
    assert interval.half == pytest.approx(0.496828, abs=1e-6)
    assert (interval.low, interval.high) == pytest.approx((0.4 - 0.496828, 0.4 + 0.496828), abs=1e-6)


def test_one_seed_has_no_interval():
    interval = mean_interval([0.7])
    assert (interval.mean, interval.half, interval.low, interval.high) == (0.7, None, None, None)
    assert "no interval" in interval.text()
    with pytest.raises(ValueError, match="at least one"):
        mean_interval([])


def _run(seed: int, entropy: list[float], after1: float, after8: float, before1: float) -> dict:
    evaluation = lambda p1, p8: {"samples": 8, "pass_at_k": {"1": p1, "8": p8}}  # noqa: E731
    return {
        "seed": seed,
        "curves": {"entropy": [[s + 1, v] for s, v in enumerate(entropy)]},
        "eval_after": evaluation(after1, after8),
        "eval_before": evaluation(before1, 0.5),
    }


def test_arm_table_intervals_come_from_the_seeds():
    # Two seeds: final entropy 2.0 and 3.0 -> mean 2.5, s = 0.707107, t_{0.975,1} = 12.706205,
    # half = 12.706205 · 0.707107/√2 = 12.706205 · 0.5 = 6.353102.
    runs = [_run(0, [4.0, 3.0, 2.0], 0.1, 0.6, 0.05), _run(1, [4.2, 3.5, 3.0], 0.3, 0.8, 0.05)]
    summary = arm_summary(runs, ["entropy"])
    final = summary["final"]["entropy"]
    assert final["mean"] == pytest.approx(2.5) and final["half"] == pytest.approx(6.353102, abs=1e-6)
    # pass@1 after: 0.1, 0.3 -> 0.2 ± 12.706205 · 0.141421/√2 = 1.270620.
    assert summary["final"]["pass@1 after"]["mean"] == pytest.approx(0.2)
    assert summary["final"]["pass@1 after"]["half"] == pytest.approx(1.270620, abs=1e-6)
    assert summary["final"]["pass@8 after"]["mean"] == pytest.approx(0.7)
    # Equal values: s = 0, a zero-width interval (not "no interval").
    assert summary["final"]["pass@1 before"]["half"] == pytest.approx(0.0, abs=1e-15)
    # Curves: step 2 -> mean(3.0, 3.5) = 3.25, half = 12.706205 · 0.353553/√2 = 3.176551.
    step2 = summary["curves"]["entropy"][1]
    assert step2["step"] == 2 and step2["mean"] == pytest.approx(3.25) and step2["half"] == pytest.approx(3.176551, abs=1e-6)
    assert summary["pass_at_k_after"]["8"]["mean"] == pytest.approx(0.7)


def test_a_step_only_some_seeds_reached_uses_those_seeds():
    band = curve_band([[[1, 1.0], [2, 2.0]], [[1, 3.0]]])
    assert [(p["step"], p["n"], p["mean"]) for p in band] == [(1, 2, 2.0), (2, 1, 2.0)]
    assert band[1]["half"] is None

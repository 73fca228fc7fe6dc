"""Perplexity under the base model and token-entropy statistics, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from outrider.eval import stats
from outrider.eval.analysis import analyze
from outrider.eval.records import Solution, TaskRecord


def _rec(name, task, solutions=(), entropies=()):
    return TaskRecord(name, task, "math", 4, len(solutions), 0, 0, tuple(solutions), tuple(entropies))


def test_per_solution_perplexity_is_exp_of_minus_mean_logprob():
    # 4 tokens with Σ log p = −2 → mean −0.5 → e^0.5; 2 tokens with Σ = −3 → e^1.5.
    got = stats.perplexities([4, 2], [-2.0, -3.0])
    np.testing.assert_allclose(got, [1.6487212707001282, 4.4816890703380645], rtol=1e-14)
    with pytest.raises(ValueError, match=">= 1 token"):
        stats.perplexities([0], [-1.0])


def test_analysis_perplexity_against_the_base_by_hand():
    # base's own correct solutions: ppl e^0.5 = 1.648721 and e^1.5 = 4.481689;
    #   mean 3.065205, median 3.065205, pooled exp(5/6) = 2.300976 (5 nats over 6 tokens).
    # rl: one solution, 10 tokens, Σ = −1 → e^0.1 = 1.105171;
    #   mean ratio 1.105171 / 3.065205, below the base's median: 1 of 1.
    recs = {
        "base": {"a": _rec("base", "a", [Solution(4, -2.0)]), "b": _rec("base", "b", [Solution(2, -3.0)])},
        "rl": {"a": _rec("rl", "a", [Solution(10, -1.0)]), "b": _rec("rl", "b")},
    }
    p = analyze(recs, "base", 4)["perplexity"]["per_checkpoint"]
    assert p["base"]["count"] == 2 and p["base"]["tasks_with_solutions"] == 2
    assert p["base"]["mean"] == pytest.approx((math.exp(0.5) + math.exp(1.5)) / 2, rel=1e-12)
    assert p["base"]["median"] == pytest.approx(3.0652051705190964, rel=1e-12)
    assert p["base"]["pooled"] == pytest.approx(math.exp(5 / 6), rel=1e-12)
    assert p["rl"]["mean"] == pytest.approx(math.exp(0.1), rel=1e-12)
    assert p["rl"]["vs_base"]["mean_ratio"] == pytest.approx(math.exp(0.1) / 3.0652051705190964, rel=1e-12)
    assert p["rl"]["vs_base"]["share_below_base_median"] == 1.0
    assert p["rl"]["tasks_with_solutions"] == 1


def test_no_solutions_gives_empty_statistics_not_an_error():
    recs = {"base": {"a": _rec("base", "a")}, "rl": {"a": _rec("rl", "a")}}
    out = analyze(recs, "base", 4)
    assert out["perplexity"]["per_checkpoint"]["rl"]["count"] == 0
    assert out["perplexity"]["per_checkpoint"]["rl"]["mean"] is None
    assert out["perplexity"]["histogram"]["edges"] == []
    assert out["entropy"]["forking_threshold"] is None


def test_entropy_statistics_and_forking_share_from_the_base_threshold():
    # base entropies 0.1, 0.2, …, 1.0: the 0.8 quantile (linear interpolation) sits at
    # position 0.8·9 = 7.2 between 0.8 and 0.9 → 0.82; above it: 0.9, 1.0 → share 0.2.
    # rl entropies 0, 0.5, 0.85, 2.0: above 0.82 are 0.85 and 2.0 → share 0.5;
    # mean (0 + 0.5 + 0.85 + 2.0) / 4 = 0.8375.
    base_h = [round(0.1 * i, 10) for i in range(1, 11)]
    recs = {
        "base": {"a": _rec("base", "a", entropies=base_h[:6]), "b": _rec("base", "b", entropies=base_h[6:])},
        "rl": {"a": _rec("rl", "a", entropies=[0.0, 0.5]), "b": _rec("rl", "b", entropies=[0.85, 2.0])},
    }
    e = analyze(recs, "base", 4, forking_quantile=0.8)["entropy"]
    assert e["forking_threshold"] == pytest.approx(0.82, abs=1e-12)
    assert e["per_checkpoint"]["base"]["forking_share"] == pytest.approx(0.2)
    assert e["per_checkpoint"]["rl"]["forking_share"] == pytest.approx(0.5)
    assert e["per_checkpoint"]["rl"]["mean"] == pytest.approx(0.8375, abs=1e-12)
    assert e["per_checkpoint"]["base"]["median"] == pytest.approx(0.55, abs=1e-12)
    # Shared histogram bins cover both checkpoints' values and count all of them.
    h = e["histogram"]
    assert h["edges"][0] == 0.0 and h["edges"][-1] == 2.0
    assert sum(h["counts"]["base"]) == 10 and sum(h["counts"]["rl"]) == 4


def test_log_histogram_edges_span_the_values_exactly():
    # Edges evenly spaced in log between 1 and 100: 1, 10, 100; bins [1, 10) and [10, 100].
    h = stats.histogram({"a": np.array([1.0, 5.0, 20.0, 100.0]), "b": np.array([3.0])}, bins=2, log=True)
    np.testing.assert_allclose(h["edges"], [1.0, 10.0, 100.0], rtol=1e-12)
    assert h["edges"][0] == 1.0 and h["edges"][-1] == 100.0
    assert h["counts"] == {"a": [2, 2], "b": [1, 0]}


def test_a_histogram_of_one_repeated_value_has_increasing_edges_around_it():
    # A single correct solution gives one perplexity: log bins span log(v) ± 0.5.
    for log in (True, False):
        result = stats.histogram({"base": np.array([3.0, 3.0])}, bins=4, log=log)
        edges = np.array(result["edges"])
        assert np.all(np.diff(edges) > 0)
        assert edges[0] < 3.0 < edges[-1]
        assert sum(result["counts"]["base"]) == 2
    edges = stats.histogram({"base": np.array([3.0])}, bins=2, log=True)["edges"]
    assert edges == pytest.approx([3.0 * np.exp(-0.5), 3.0, 3.0 * np.exp(0.5)])

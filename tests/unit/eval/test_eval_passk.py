"""pass@k curves of the evaluation against exact enumeration with rational arithmetic."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from outrider.eval import stats
from outrider.eval.analysis import analyze
from outrider.eval.records import TaskRecord


def _enumerated(sample_vector: list[int], k: int) -> Fraction:
    """Share of the k-subsets of the explicit 0/1 samples that contain a correct one."""
    subsets = list(itertools.combinations(sample_vector, k))
    return Fraction(sum(1 for s in subsets if any(s)), len(subsets))


def test_k_grid_is_powers_of_two_plus_n():
    assert stats.k_grid(1) == [1]
    assert stats.k_grid(8) == [1, 2, 4, 8]
    assert stats.k_grid(12) == [1, 2, 4, 8, 12]
    assert stats.k_grid(1024) == [2**i for i in range(11)]
    with pytest.raises(ValueError, match="n must be >= 1"):
        stats.k_grid(0)


@pytest.mark.parametrize("n", [1, 3, 6, 9])
def test_per_task_pass_at_k_equals_subset_enumeration(n):
    # Every c in 0..n, the correct samples placed at scattered positions of the vector
    # (the estimator must not depend on where they are).
    rng = np.random.default_rng(n)
    vectors = []
    for c in range(n + 1):
        v = [0] * n
        for i in rng.permutation(n)[:c]:
            v[i] = 1
        vectors.append(v)
    ks = list(range(1, n + 1))
    ids = [f"c{c}" for c in range(n + 1)]
    got = stats.per_task_pass_at_k([n] * len(vectors), [sum(v) for v in vectors], ks, ids)
    for t, v in enumerate(vectors):
        for j, k in enumerate(ks):
            assert abs(got[t, j] - float(_enumerated(v, k))) < 1e-13, (v, k)


def test_checkpoint_curve_is_the_task_mean_of_enumerations_with_per_task_sample_counts():
    # Tasks with different sample counts (errored episodes are not samples): the curve on
    # the grid up to the smallest count is the exact rational mean over tasks.
    vectors = {"a": [1, 0, 0, 0, 0, 0, 0, 0], "b": [0, 1, 1, 0, 0, 0], "c": [0, 0, 0, 0, 0, 0, 0],
               "d": [1, 1, 1, 1, 1, 0, 1, 1]}
    records = {"base": {t: TaskRecord("base", t, "math", len(v), sum(v), 0, 8 - len(v)) for t, v in vectors.items()}}
    out = analyze(records, "base", 8)
    assert out["grid"]["ks"] == [1, 2, 4, 6]  # k_max = 6, the fewest samples (task b)
    assert out["grid"]["truncated"] and out["grid"]["short_tasks"] == ["base/b", "base/c"]
    for j, k in enumerate(out["grid"]["ks"]):
        exact = sum(_enumerated(v, k) for v in vectors.values()) / len(vectors)
        assert abs(out["pass_at_k"]["base"]["episode"]["value"][j] - float(exact)) < 1e-13, k


def test_curves_are_monotone_in_k_up_to_1024():
    rng = np.random.default_rng(7)
    n = 1024
    c = rng.binomial(n, rng.beta(0.3, 2.0, size=50))
    ks = stats.k_grid(n)
    curve = stats.per_task_pass_at_k(np.full(50, n), c, ks, [f"t{i}" for i in range(50)])
    assert np.isfinite(curve).all()
    assert (np.diff(curve, axis=1) >= 0).all()
    assert (np.diff(curve.mean(axis=0)) >= 0).all()


def test_a_task_with_fewer_samples_than_k_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"pass@4 needs at least 4 samples per task; task\(s\) 'short'"):
        stats.per_task_pass_at_k([8, 3], [1, 1], [1, 2, 4], ["ok", "short"])


def test_a_task_without_samples_is_an_error_naming_it():
    records = {"base": {"t0": TaskRecord("base", "t0", "math", 4, 1, 0, 0),
                        "t1": TaskRecord("base", "t1", "math", 0, 0, 0, 4)}}
    with pytest.raises(ValueError, match="base/t1"):
        analyze(records, "base", 4)

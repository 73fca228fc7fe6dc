"""Unbiased pass@k: exact enumeration, exact rational arithmetic, stability at n = 1024."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest
import torch

from outrider.learner.algos import pass_at_k, pass_at_k_curve


def test_hand_values():
    # n = 4, c = 1, k = 2: 1 − C(3,2)/C(4,2) = 1 − 3/6 = 0.5.
    # n = 5, c = 2, k = 2: 1 − C(3,2)/C(5,2) = 1 − 3/10 = 0.7.
    # c = 0 -> 0; n − c < k (n = 3, c = 2, k = 2) -> 1; k = 1 -> c/n.
    out = pass_at_k(torch.tensor([4, 5, 6, 3, 8]), torch.tensor([1, 2, 0, 2, 3]), 2)
    torch.testing.assert_close(out, torch.tensor([0.5, 0.7, 0.0, 1.0, 1 - 10 / 28], dtype=torch.float64),
                               rtol=0, atol=1e-15)
    torch.testing.assert_close(pass_at_k(torch.tensor([8]), torch.tensor([3]), 1),
                               torch.tensor([3 / 8], dtype=torch.float64), rtol=0, atol=1e-15)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_matches_exact_subset_enumeration(n):
    # For every c and k, the fraction of k-subsets of n samples (c of them correct) that
    # contain a correct sample, counted by enumerating the subsets.
    for c in range(n + 1):
        correct = set(range(c))
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(range(n), k))
            hit = sum(1 for s in subsets if correct.intersection(s)) / len(subsets)
            got = pass_at_k(torch.tensor([n]), torch.tensor([c]), k).item()
            assert abs(got - hit) < 1e-13, (n, c, k)


def test_matches_exact_rationals_at_n_1024():
    # C(1024, k) overflows float64 for k ≳ 150; compare with exact Fractions (relative 1e-12).
    n = 1024
    cs = [0, 1, 3, 17, 200, 511, 1000, 1023, 1024]
    ks = [1, 2, 10, 64, 100, 256, 512, 1000, 1024]
    for k in ks:
        got = pass_at_k(torch.full((len(cs),), n), torch.tensor(cs), k)
        for c, g in zip(cs, got.tolist()):
            exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
            assert math.isfinite(g)
            assert abs(g - float(exact)) <= 1e-12 * max(float(exact), 1e-300), (c, k, g, float(exact))


def test_finite_and_monotone_in_k_at_n_1024():
    n = 1024
    c = torch.tensor([0, 1, 2, 5, 50, 512, 1024])
    prev = None
    for k in range(1, n + 1, 7):
        cur = pass_at_k(torch.full_like(c, n), c, k)
        assert torch.isfinite(cur).all() and (cur >= 0).all() and (cur <= 1).all()
        if prev is not None:
            assert (cur >= prev).all()
        prev = cur
    curve = pass_at_k_curve(torch.full_like(c, n), c, [1, 16, 256, 1024])
    assert (curve.diff() >= 0).all() and torch.isfinite(curve).all()


def test_rejects_invalid_arguments():
    with pytest.raises(ValueError):
        pass_at_k(torch.tensor([4]), torch.tensor([1]), 5)
    with pytest.raises(ValueError):
        pass_at_k(torch.tensor([4]), torch.tensor([5]), 1)

"""Davis & Recht (2510.13651): weights -> implied objective h_M, and back."""

from __future__ import annotations

import math

import pytest
import torch

from outrider.learner.algos import ADVANTAGE_ESTIMATORS, WEIGHT_SCHEMES, AdvantageInputs
from outrider.learner.algos.objective_transforms import (
    BinaryWeights,
    binomial_pmf,
    binomial_tail,
    implied_objective,
    implied_objective_derivative,
    weights_from_objective,
)

F64 = torch.float64
GRID = torch.linspace(0.0, 1.0, 201, dtype=F64)
INTERIOR = torch.linspace(0.01, 0.99, 99, dtype=F64)


def scheme(name, m):
    return WEIGHT_SCHEMES.get(name)(m)


def random_weights(seed, m):
    gen = torch.Generator().manual_seed(seed)
    a, b = torch.randn(m + 1, generator=gen, dtype=F64), torch.randn(m + 1, generator=gen, dtype=F64)
    a[-1] = b[0] = 0.0
    return BinaryWeights(a, b)


def test_binomial_tail_is_the_regularized_incomplete_beta():
    # I_t(1, M) = P(X ≥ 1) = 1 − (1−t)^M;  I_t(M, 1) = P(X = M) = t^M;  P(X ≥ 0) = 1;
    # and each tail equals the direct sum of C(M, j) t^j (1−t)^{M−j}.
    m = 7
    tail = binomial_tail(m, GRID)
    torch.testing.assert_close(tail[:, 0], torch.ones_like(GRID), rtol=0, atol=1e-14)
    torch.testing.assert_close(tail[:, 1], 1 - (1 - GRID) ** m, rtol=0, atol=1e-14)
    torch.testing.assert_close(tail[:, m], GRID**m, rtol=0, atol=1e-14)
    for j in range(m + 1):
        direct = sum(math.comb(m, i) * GRID**i * (1 - GRID) ** (m - i) for i in range(j, m + 1))
        torch.testing.assert_close(tail[:, j], direct, rtol=0, atol=1e-14)


@pytest.mark.parametrize("m", [2, 5, 16])
def test_linear_schemes(m):
    # REINFORCE c_k = 1 - 0 = 1 -> h = (1/M) Σ_{s<M} P(X ≥ s+1) = E[X]/M = t.
    # RLOO c_k = (M−k−1)/(M−1) + k/(M−1) = 1 -> h = t.
    # Mean baseline c_k = (1 − (k+1)/M) + k/M = 1 − 1/M -> h = (1 − 1/M) t.
    torch.testing.assert_close(implied_objective(scheme("reinforce", m), GRID), GRID, rtol=0, atol=1e-14)
    torch.testing.assert_close(implied_objective(scheme("rloo", m), GRID), GRID, rtol=0, atol=1e-14)
    torch.testing.assert_close(implied_objective(scheme("dr_grpo", m), GRID), (1 - 1 / m) * GRID, rtol=0, atol=1e-14)


@pytest.mark.parametrize("m", [4, 16, 64])
def test_rejection_sampling_is_log_like(m):
    # b_s = M/s: h'(t) = Σ_k C(M−1,k) t^k (1−t)^{M−1−k} M/(k+1) = Σ_j C(M,j) t^{j−1} (1−t)^{M−j}
    #               = (1 − (1−t)^M)/t.
    w = scheme("rejection_sampling", m)
    torch.testing.assert_close(implied_objective_derivative(w, INTERIOR), (1 - (1 - INTERIOR) ** m) / INTERIOR,
                               rtol=0, atol=1e-12)
    # h(t) − h(1) − log t = ∫_t^1 (1−u)^M/u du ∈ [0, (1−t)^{M+1}/((M+1) t)].
    t = torch.linspace(0.2, 1.0, 81, dtype=F64)
    gap = implied_objective(w, t) - implied_objective(w, torch.ones(1, dtype=F64)) - torch.log(t)
    assert (gap >= -1e-12).all()
    assert (gap <= (1 - t) ** (m + 1) / ((m + 1) * t) + 1e-12).all()


@pytest.mark.parametrize("seed", range(3))
def test_derivative_formula_is_the_derivative_of_h(seed):
    w = random_weights(seed, 9)
    t = INTERIOR.clone().requires_grad_()
    (dh,) = torch.autograd.grad(implied_objective(w, t).sum(), t)
    torch.testing.assert_close(dh, implied_objective_derivative(w, INTERIOR), rtol=0, atol=1e-11)


@pytest.mark.parametrize("name", ["grpo", "rejection_sampling", "logit", "random"])
@pytest.mark.parametrize("m", [2, 3, 8])
def test_expected_update_by_exact_enumeration(name, m):
    # Bernoulli policy with logit θ: t = σ(θ), ∇log π(y) = y − t, ∇t = t(1 − t). Summing over
    # S ~ Bin(M, t): E[(1/M) Σ_i Z_i (R_i − t)] = (1/M) Σ_s P(S=s) [s b_s (1−t) − (M−s) a_s t],
    # which must equal h_M'(t) t(1−t).
    w = random_weights(1, m) if name == "random" else scheme(name, m)
    pmf = binomial_pmf(m, INTERIOR)
    s = torch.arange(m + 1, dtype=F64)
    t = INTERIOR[:, None]
    lhs = (pmf * (s * w.b * (1 - t) - (m - s) * w.a * t)).sum(-1) / m
    rhs = implied_objective_derivative(w, INTERIOR) * INTERIOR * (1 - INTERIOR)
    torch.testing.assert_close(lhs, rhs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["grpo", "logit"])
@pytest.mark.parametrize("theta", [-1.0, 0.3])
def test_monte_carlo_bernoulli_toy(name, theta):
    # N groups of M = 8 draws from Bernoulli(σ(θ)); autograd of the surrogate
    # mean_groups (1/M) Σ_i Z_i log π(y_i) gives the sample mean of (1/M) Σ_i Z_i (y_i − t).
    # It must be within 5 standard errors (per-group std/√N) of h_M'(t) ∇t.
    m, n = 8, 40000
    w = scheme(name, m)
    th = torch.tensor(theta, dtype=F64, requires_grad=True)
    t = torch.sigmoid(th)
    y = (torch.rand(n, m, generator=torch.Generator().manual_seed(17), dtype=F64) < t.detach()).to(F64)
    s = y.sum(-1, keepdim=True).long()
    z = torch.where(y > 0, w.b[s], w.a[s])
    logp = y * torch.log(t) + (1 - y) * torch.log1p(-t)
    (grad,) = torch.autograd.grad((z * logp).mean(-1).mean(), th)
    per_group = (z * (y - t.detach())).mean(-1)
    se = per_group.std().item() / math.sqrt(n)
    td = t.detach()
    expected = (implied_objective_derivative(w, td[None]) * td * (1 - td)).item()
    assert abs(per_group.mean().item() - grad.item()) < 1e-12
    assert abs(grad.item() - expected) < 5 * se


# Sup-norm error of GRPO's h_M against 2 arcsin √t, no rescaling. The sup over [0, 1] is
# attained at t = 1, where h_M(1) = (1/M) Σ_k c_k = (1/M) Σ_{s=1}^{M−1} 1/sqrt(p_s(1−p_s)),
# p_s = s/M: a midpoint-free Riemann sum of ∫_0^1 dp/sqrt(p(1−p)) = π = 2 arcsin 1. E.g. M = 4:
# (1/4)(4/√3 + 2 + 4/√3) = 2/√3 + 1/2 = 1.6547005383792515, error π − that = 1.4868921152105417.
GRPO_SUP_ERRORS = {4: 1.4868921152105417, 16: 0.7334438088093140, 64: 0.3654952357393775, 256: 0.1825950852826663}


def test_grpo_objective_approaches_twice_arcsin_sqrt():
    t = torch.linspace(0.0, 1.0, 20001, dtype=F64)
    target = 2 * torch.asin(torch.sqrt(t))
    rows = []
    for m, recorded in GRPO_SUP_ERRORS.items():
        h = implied_objective(scheme("grpo", m), t)
        err = (h - target).abs()
        riemann = sum(1 / math.sqrt((s / m) * (1 - s / m)) for s in range(1, m)) / m
        assert abs(err.max().item() - (math.pi - riemann)) < 1e-12
        assert err.argmax().item() == len(t) - 1
        assert abs(err.max().item() - recorded) < 1e-9
        # Shape alone (rescaled so that h_M(1) = π) and the derivative in the interior.
        rescaled = (h * math.pi / h[-1] - target).abs().max().item()
        inner = torch.linspace(0.05, 0.95, 901, dtype=F64)
        d_err = (implied_objective_derivative(scheme("grpo", m), inner) - 1 / torch.sqrt(inner * (1 - inner)))
        rows.append((m, err.max().item(), rescaled, d_err.abs().max().item()))
    print("\nM    sup|h_M − 2 asin√t|   rescaled   sup_[.05,.95]|h_M' − 1/√(t(1−t))|")
    for m, e, r, d in rows:
        print(f"{m:<4} {e:.10f}          {r:.10f}   {d:.10f}")
    errors = [r[1] for r in rows]
    # O(M^{-1/2}): quadrupling M halves the error (√M·err → 2.92).
    for e_small, e_big in zip(errors, errors[1:]):
        assert 1.9 < e_small / e_big < 2.1
    assert all(r2[2] < r1[2] for r1, r2 in zip(rows, rows[1:]))
    assert all(r2[3] < r1[3] for r1, r2 in zip(rows, rows[1:]))


@pytest.mark.parametrize("m", [2, 3, 6, 11])
def test_weights_from_objective_linear_and_quadratic(m):
    # h(t) = t: c_k = M(1/M) = 1, the RLOO coefficients; the baseline split returns RLOO.
    w = weights_from_objective(lambda x: x, m)
    r = scheme("rloo", m)
    torch.testing.assert_close(w.a, r.a, rtol=0, atol=1e-12)
    torch.testing.assert_close(w.b, r.b, rtol=0, atol=1e-12)
    # h(t) = t²: h_M is the Bernstein polynomial B_M[t²](t) = t² + t(1−t)/M (minus h(0) = 0).
    for split in ("baseline", "success_only"):
        w = weights_from_objective(lambda x: x**2, m, split=split)
        torch.testing.assert_close(implied_objective(w, GRID), GRID**2 + GRID * (1 - GRID) / m, rtol=0, atol=1e-12)


@pytest.mark.parametrize("m", [3, 4, 16, 65])
def test_baseline_split_recovers_grpo_and_is_zero_sum(m):
    g = scheme("grpo", m)
    c = g.coefficients()
    # Rebuild from GRPO's coefficients via a target whose node differences are c/M.
    beta = torch.cat([torch.zeros(1, dtype=F64), torch.cumsum(c, 0) / m])
    w = weights_from_objective(lambda x: beta[(x * m).round().long()], m)
    torch.testing.assert_close(w.a, g.a, rtol=0, atol=1e-11)
    torch.testing.assert_close(w.b, g.b, rtol=0, atol=1e-11)
    s = torch.arange(m + 1, dtype=F64)
    torch.testing.assert_close(s * w.b + (m - s) * w.a, torch.zeros(m + 1, dtype=F64), rtol=0, atol=1e-11)


def test_logit_scheme_approaches_the_logit():
    # h_M(t) − h_M(1/2) vs logit(t) on [0.1, 0.9]: error shrinks as M grows; the weights
    # stay moderate (the least-squares split is stable) and even M is exactly zero-sum.
    t = torch.linspace(0.1, 0.9, 161, dtype=F64)
    half = torch.tensor([0.5], dtype=F64)
    errs = []
    for m in (4, 16, 64, 256):
        w = scheme("logit", m)
        h = implied_objective(w, t) - implied_objective(w, half)
        errs.append((h - torch.logit(t)).abs().max().item())
        assert max(w.a.abs().max().item(), w.b.abs().max().item()) < 1.0 * m
        s = torch.arange(m + 1, dtype=F64)
        assert (s * w.b + (m - s) * w.a).abs().max().item() < 1e-9
    assert all(e2 < e1 for e1, e2 in zip(errs, errs[1:])) and errs[-1] < 0.02


def test_objective_weights_estimator():
    # Group of 4 with rewards [1, 0, 0, 1] (s = 2, p = 1/2, σ = 1/2): GRPO weights
    # b = (1/2)/(1/2) = 1, a = −1 -> Z = [1, −1, −1, 1]; REINFORCE weights Z = R.
    inputs = AdvantageInputs(torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=F64), torch.ones(4, 2, dtype=torch.bool),
                             group_index=torch.zeros(4, dtype=torch.long))
    entry = ADVANTAGE_ESTIMATORS.get("objective_weights")
    out = entry(inputs)
    torch.testing.assert_close(out.advantages[:, 0], torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=F64), rtol=0, atol=1e-15)
    out = entry(inputs, entry.make_params(scheme="reinforce"))
    torch.testing.assert_close(out.advantages[:, 1], inputs.rewards, rtol=0, atol=0)
    with pytest.raises(ValueError, match="binary"):
        entry(AdvantageInputs(torch.tensor([0.5, 1.0], dtype=F64), torch.ones(2, 1, dtype=torch.bool),
                              group_index=torch.zeros(2, dtype=torch.long)))
    with pytest.raises(ValueError, match="scheme"):
        entry.make_params(scheme="nope")

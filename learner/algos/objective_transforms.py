"""Which objective does a group-weighted policy gradient ascend? (Davis & Recht, 2510.13651)

Binary rewards. For one prompt draw M samples y_1..y_M ~ π, R_i ∈ {0, 1}, let
S = Σ_i R_i be the number of successes and t = P(R = 1) under π. An update of the form

    g = (1/M) Σ_i Z_i ∇log π(y_i),    Z_i = (1 − R_i) a_S + R_i b_S,

(a_s: weight of a failure, b_s: weight of a success, in a group with s successes) has
expectation E[g] = h_M'(t) ∇t, i.e. it is a stochastic gradient of h_M(t) with

    h_M'(t) = Σ_{k=0}^{M−1} C(M−1, k) t^k (1−t)^{M−1−k} (b_{k+1} − a_k)
    h_M(t)  = (1/M) Σ_{s=0}^{M−1} (b_{s+1} − a_s) I_t(s+1, M−s),   h_M(0) = 0,

where I_t(s+1, M−s) = P(Binomial(M, t) ≥ s+1) is the regularized incomplete beta
function at integer arguments. Derivation: by symmetry E[g] = E[Z_1 ∇log π(y_1)]; with
S = R_1 + S', S' ~ Bin(M−1, t) independent of y_1, and E[R ∇log π] = ∇t,
E[(1 − R) ∇log π] = −∇t, E[g] = ∇t (E b_{1+S'} − E a_{S'}).

Indexing: a and b are indexed by the total number of successes S in the group,
including the sample itself. If instead they are indexed by the successes among the
*other* M − 1 samples (b'_s = b_{s+1}, a'_s = a_s), the same objective reads
h_M(t) = (1/M) Σ_s (b'_s − a'_s) I_t(s+1, M−s).

Built-in schemes: REINFORCE (h = t), RLOO (h = t), mean-baseline/Dr. GRPO
(h = (1 − 1/M) t), rejection sampling (h' = (1 − (1−t)^M)/t → log t), GRPO with
population std (h_M → 2 arcsin √t; see docs/algorithms.md for the measured error), and
the logit built with :func:`weights_from_objective`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch
from torch import Tensor

from outrider.config.names import ObjectiveWeightSchemeName as WeightSchemeName  # generated (make catalog)

from .advantages import (
    ADVANTAGE_ESTIMATORS,
    AdvantageInputs,
    AdvantageOutputs,
    broadcast_to_tokens,
    discounted_returns,
    token_level_rewards,
)
from .masked import group_count, group_sum
from .registry import NoParams, Params, Registry, param

__all__ = [
    "WEIGHT_SCHEMES",
    "BinaryWeights",
    "ObjectiveWeightsParams",
    "WeightSchemeName",
    "binomial_pmf",
    "binomial_tail",
    "implied_objective",
    "implied_objective_derivative",
    "sample_weights",
    "weights_from_objective",
]


@dataclass(frozen=True)
class BinaryWeights:
    """a[s], b[s]: weights of a failure / a success in a group of M with s successes.

    a[M] and b[0] never apply (no failure when s = M, no success when s = 0) and are 0.
    Shape: a, b (M + 1,) float64.
    """

    a: Tensor
    b: Tensor

    @property
    def M(self) -> int:  # noqa: N802 - the paper's symbol
        return self.a.numel() - 1

    def coefficients(self) -> Tensor:
        """c_k = b_{k+1} − a_k, the Bernstein coefficients of h_M'.  Shape: (M,)."""
        return self.b[1:] - self.a[:-1]


def binomial_pmf(M: int, t: Tensor) -> Tensor:
    """P(Binomial(M, t) = j) for j = 0..M, exact to float64 rounding (log-space).

    Shape: t (N,) -> (N, M + 1).
    """
    t = t.to(torch.float64).reshape(-1, 1)
    j = torch.arange(M + 1, dtype=torch.float64)
    log_c = math.lgamma(M + 1) - torch.lgamma(j + 1) - torch.lgamma(M - j + 1)
    # xlogy(0, 0) = 0 keeps t ∈ {0, 1} exact.
    return torch.exp(log_c + torch.xlogy(j, t) + torch.xlogy(M - j, 1 - t))


def binomial_tail(M: int, t: Tensor) -> Tensor:
    """I_t(j, M − j + 1) = P(Binomial(M, t) ≥ j) for j = 0..M (a sum of non-negative
    terms, so no cancellation).  Shape: t (N,) -> (N, M + 1)."""
    pmf = binomial_pmf(M, t)
    return pmf.flip(-1).cumsum(-1).flip(-1)


def implied_objective(weights: BinaryWeights, t: Tensor) -> Tensor:
    """h_M(t) = (1/M) Σ_{s=0}^{M−1} (b_{s+1} − a_s) I_t(s+1, M−s), with h_M(0) = 0.

    Shape: t (N,) -> (N,).
    """
    m = weights.M
    tail = binomial_tail(m, t)[:, 1:]  # P(X ≥ s+1), s = 0..M−1
    return (tail * weights.coefficients()).sum(-1) / m


def implied_objective_derivative(weights: BinaryWeights, t: Tensor) -> Tensor:
    """h_M'(t) = Σ_k C(M−1,k) t^k (1−t)^{M−1−k} (b_{k+1} − a_k) = E[g]/∇t.

    Shape: t (N,) -> (N,).
    """
    return (binomial_pmf(weights.M - 1, t) * weights.coefficients()).sum(-1)


def _split_baseline(c: Tensor) -> BinaryWeights:
    # Choose a_0..a_{M-1} (then b_{s} = c_{s-1} + a_{s-1}, so every c_k holds exactly) to
    # make the group sums r_s = s·b_s + (M−s)·a_s as close to zero as possible:
    #   r = L a + d,  L[s, s] = M − s,  L[s, s−1] = s,  d_s = s·c_{s−1},   s = 0..M,
    # solved by least squares. L has full column rank and is well conditioned
    # (σ_max/σ_min ≈ 11 at M = 256), unlike the triangular recursion b_{k+1} = c_k − k b_k/(M−k),
    # which amplifies rounding by up to C(M−1, M/2). If an exactly zero-sum split exists
    # (GRPO, RLOO, mean baseline) the residual is 0 and it is the one returned.
    m = c.numel()
    s = torch.arange(m + 1, dtype=torch.float64)
    lmat = torch.zeros(m + 1, m, dtype=torch.float64)
    lmat[torch.arange(m), torch.arange(m)] = m - s[:m]
    lmat[torch.arange(1, m + 1), torch.arange(m)] = s[1:]
    d = torch.cat([torch.zeros(1, dtype=torch.float64), s[1:] * c])
    a = torch.linalg.lstsq(lmat, -d[:, None]).solution.squeeze(-1)
    a_full = torch.cat([a, torch.zeros(1, dtype=torch.float64)])
    b_full = torch.cat([torch.zeros(1, dtype=torch.float64), c + a])
    return BinaryWeights(a_full, b_full)


def weights_from_objective(
    h: Callable[[Tensor], Tensor], M: int, split: Literal["baseline", "success_only"] = "baseline"
) -> BinaryWeights:
    """Weights whose implied objective is the degree-M Bernstein polynomial of a target h.

    Nodes ξ_j = j/M (j = 0..M); where h is infinite at an end (log, logit) that node moves
    in to 1/(2M) or 1 − 1/(2M). With β_j = h(ξ_j), c_k = M (β_{k+1} − β_k) gives
        h_M(t) = Σ_j β_j C(M,j) t^j (1−t)^{M−j} − β_0,
    the Bernstein approximation of h (exact for linear h; → h pointwise as M → ∞).
    The split of each c_k into b_{k+1} − a_k:
      * ``baseline``: the split whose group sums s·b_s + (M−s)·a_s are closest to zero
        (least squares over s = 0..M): a group-mean baseline like GRPO's and RLOO's, which
        it returns exactly from their coefficients. A zero-sum split exists only when the
        (M−1)-th finite difference of c vanishes (e.g. linear h, symmetric h with even M);
        otherwise the small remainder is spread over the groups;
      * ``success_only``: a = 0, b_s = c_{s−1} (rejection-sampling form, no baseline).
    """
    if M < 2:
        raise ValueError("M must be at least 2")
    nodes = torch.arange(M + 1, dtype=torch.float64) / M
    beta = h(nodes).to(torch.float64)
    if not torch.isfinite(beta[0]):
        beta[0] = h(torch.tensor([0.5 / M], dtype=torch.float64))[0]
    if not torch.isfinite(beta[-1]):
        beta[-1] = h(torch.tensor([1 - 0.5 / M], dtype=torch.float64))[0]
    if not torch.isfinite(beta).all():
        raise ValueError("h must be finite on (0, 1)")
    c = M * (beta[1:] - beta[:-1])
    if split == "baseline":
        return _split_baseline(c)
    if split == "success_only":
        b = torch.cat([torch.zeros(1, dtype=torch.float64), c])
        return BinaryWeights(torch.zeros(M + 1, dtype=torch.float64), b)
    raise ValueError(f"unknown split {split!r}; valid: baseline, success_only")


# ---------------------------------------------------------------------------- schemes

WeightSchemeFn = Callable[[int, Params], BinaryWeights]
# Entries take (M, params): WEIGHT_SCHEMES.get(name)(M) -> BinaryWeights.
WEIGHT_SCHEMES: Registry[WeightSchemeFn] = Registry("objective weight scheme")


def _s(M: int) -> Tensor:
    return torch.arange(M + 1, dtype=torch.float64)


def _only_valid(a: Tensor, b: Tensor) -> BinaryWeights:
    a, b = a.clone(), b.clone()
    a[-1] = 0.0  # no failures when s = M
    b[0] = 0.0  # no successes when s = 0
    return BinaryWeights(a, b)


@WEIGHT_SCHEMES.register("reinforce", params=NoParams)
def reinforce_weights(M: int, params: NoParams) -> BinaryWeights:
    """Z = R: b_s = 1, a_s = 0; h_M(t) = t."""
    return _only_valid(torch.zeros(M + 1, dtype=torch.float64), torch.ones(M + 1, dtype=torch.float64))


@WEIGHT_SCHEMES.register("rloo", params=NoParams)
def rloo_weights(M: int, params: NoParams) -> BinaryWeights:
    """Leave-one-out: b_s = (M−s)/(M−1), a_s = −s/(M−1); c_k = 1, h_M(t) = t."""
    s = _s(M)
    return _only_valid(-s / (M - 1), (M - s) / (M - 1))


@WEIGHT_SCHEMES.register("dr_grpo", params=NoParams)
def dr_grpo_weights(M: int, params: NoParams) -> BinaryWeights:
    """Mean baseline: b_s = 1 − s/M, a_s = −s/M; c_k = 1 − 1/M, h_M(t) = (1 − 1/M) t."""
    s = _s(M)
    return _only_valid(-s / M, 1 - s / M)


@WEIGHT_SCHEMES.register("rejection_sampling", params=NoParams)
def rejection_sampling_weights(M: int, params: NoParams) -> BinaryWeights:
    """Fine-tune on the successes, averaged: b_s = M/s, a_s = 0;
    h_M'(t) = (1 − (1−t)^M)/t, so h_M(t) − h_M(1) → log t."""
    s = _s(M)
    return _only_valid(torch.zeros(M + 1, dtype=torch.float64), M / s.clamp(min=1))


@WEIGHT_SCHEMES.register("grpo", params=NoParams)
def grpo_weights(M: int, params: NoParams) -> BinaryWeights:
    """GRPO with population std: p = s/M, σ_s = sqrt(p(1−p)),
    b_s = (1 − p)/σ_s, a_s = −p/σ_s, and 0 when s ∈ {0, M}; h_M → 2 arcsin √t."""
    p = _s(M) / M
    mixed = (p > 0) & (p < 1)
    sigma = torch.where(mixed, torch.sqrt(p * (1 - p)), torch.ones_like(p))
    zero = torch.zeros_like(p)
    return _only_valid(torch.where(mixed, -p / sigma, zero), torch.where(mixed, (1 - p) / sigma, zero))


@WEIGHT_SCHEMES.register("logit", params=NoParams)
def logit_weights(M: int, params: NoParams) -> BinaryWeights:
    """Target h(t) = log(t/(1−t)) via :func:`weights_from_objective` (baseline split)."""
    return weights_from_objective(torch.logit, M, split="baseline")


# ---------------------------------------------------------------------------- estimator


def sample_weights(rewards: Tensor, group_index: Tensor, scheme: WeightSchemeFn) -> Tensor:
    """Z_i = (1 − R_i) a_{S_i} + R_i b_{S_i}, S_i the successes in sample i's group of M_i.

    Rewards must be exactly 0 or 1. Shape: rewards, group_index (B,) -> (B,).
    """
    if not bool(((rewards == 0) | (rewards == 1)).all()):
        raise ValueError("objective weights need binary rewards in {0, 1}")
    r = rewards.to(torch.float64)
    m = group_count(group_index).long()
    s = group_sum(r, group_index).round().long()
    z = torch.zeros_like(r)
    for size in torch.unique(m).tolist():
        sel = m == size
        if size < 2:
            continue  # a single sample has no group to compare with: weight 0
        w = scheme(int(size), NoParams())
        a, b = w.a.to(r.device), w.b.to(r.device)
        z[sel] = torch.where(r[sel] > 0, b[s[sel]], a[s[sel]])
    return z.to(rewards.dtype)


@dataclass(frozen=True)
class ObjectiveWeightsParams(Params):
    scheme: str = param(
        "grpo", "weight scheme, i.e. the implied objective h(t)", choices=WEIGHT_SCHEMES.names(),  # the schemes registered above
    )


@ADVANTAGE_ESTIMATORS.register("objective_weights", params=ObjectiveWeightsParams, requires=("group_index",))
@torch.no_grad()
def objective_weights(inputs: AdvantageInputs, params: ObjectiveWeightsParams) -> AdvantageOutputs:
    """Davis–Recht weights as advantages (2510.13651): A_i = Z_i on every token of sample i.

    Binary outcome rewards only (``token_rewards`` must be None). With ``pg`` and
    ``seq_mean_token_sum`` aggregation, the loss gradient is −(1/B) Σ_i Z_i ∇log π(y_i):
    per prompt a stochastic gradient of h_M(t) for the chosen scheme.
    """
    if inputs.token_rewards is not None:
        raise ValueError("objective_weights takes binary outcome rewards only; token_rewards must be None")
    assert inputs.group_index is not None
    scheme = WEIGHT_SCHEMES.get(params.scheme).fn
    z = sample_weights(inputs.rewards, inputs.group_index, scheme)
    returns = discounted_returns(token_level_rewards(inputs), inputs.mask, 1.0)
    return AdvantageOutputs(broadcast_to_tokens(z, inputs.mask), returns)

"""Several reward components into one reward: weights, Lagrangian constraints, ensembles.

Weighted sum (scalarization of the objectives):

    R = Σ_i w_i · r_i

Lagrangian constraints (constrained RL as a saddle point, Altman 1999; RCPO, Tessler et
al. 2019; Safe RLHF, Dai et al. 2024). Each constraint c holds a component to a bound,
r_c ≤ ε_c (or r_c ≥ ε_c, written with sign s_c = −1). Its violation on one episode is
g_c = s_c·(r_c − ε_c), and the reward the policy maximizes is

    R = r_main − Σ_c λ_c · max(0, g_c)

The multipliers follow projected dual ascent on the step's mean violation:

    λ_c ← clip(λ_c + η · mean_episodes(g_c), 0, λ_max)

A violated constraint (mean g_c > 0) raises λ_c, so violations cost more; one that
holds (mean g_c < 0) lowers λ_c by η·|mean g_c| per step until it is 0 — the
penalty switches itself off where it is not needed. The hinge in R makes episodes
that satisfy the bound unpenalized; the un-hinged mean in the update is what lets λ
decay.

Ensembles (conservative scoring of learned rewards against reward hacking, Coste et
al. 2024 "Reward Model Ensembles Help Mitigate Overoptimization"): M members score
the same N items, scores (M, N); the combined score is

    mean:        μ = mean_m s_m
    min:         min_m s_m                  (worst-case optimization)
    lower_bound: μ − k · σ,  σ = std_m s_m  (uncertainty-weighted; population std)

and the disagreement of an item is σ (of a trajectory with T steps: mean_t σ_t).

KL against disagreement (a heuristic, not from a paper's derivation): where the reward
models stop agreeing the policy is likely off their training distribution, so the step's
KL coefficient is scaled by 1 + gain · max(0, d / d₀ − 1), d the step's mean
disagreement and d₀ a baseline (the first measured).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "ENSEMBLE_RULES",
    "EnsembleRule",
    "combine_ensemble",
    "constraint_violations",
    "disagreement_kl_scale",
    "dual_ascent",
    "ensemble_disagreement",
    "lagrangian_reward",
    "weighted_sum",
]

EnsembleRule = Literal["mean", "min", "lower_bound"]


def weighted_sum(values: Tensor, weights: Tensor) -> Tensor:
    """R = Σ_i w_i r_i.

    Shape: values (B, C), weights (C,) -> (B,).
    """
    return values @ weights.to(values.dtype)


def constraint_violations(values: Tensor, thresholds: Tensor, at_least: Tensor) -> Tensor:
    """g = s·(r − ε) with s = −1 for `at_least` constraints (r ≥ ε), else +1 (r ≤ ε);
    positive where violated, negative by the slack where the constraint holds.

    Shape: values (B, C), thresholds (C,), at_least (C,) bool -> (B, C).
    """
    sign = torch.where(at_least.bool(), -1.0, 1.0).to(values.dtype)
    return sign * (values - thresholds.to(values.dtype))


def lagrangian_reward(main: Tensor, violations: Tensor, multipliers: Tensor, present: Tensor | None = None) -> Tensor:
    """R = r_main − Σ_c λ_c · max(0, g_c); a constraint an episode does not carry
    (`present` 0 there) costs it nothing.

    Shape: main (B,), violations (B, C), multipliers (C,), present (B, C) or None -> (B,).
    """
    hinge = violations.clamp(min=0.0)
    if present is not None:
        hinge = torch.where(present.bool(), hinge, 0.0)
    return main - hinge @ multipliers.to(hinge.dtype)


def dual_ascent(multipliers: Tensor, mean_violation: Tensor, lr: float, max_value: float) -> Tensor:
    """λ ← clip(λ + η · mean g, 0, λ_max): projected gradient ascent on the dual.

    Shape: multipliers (C,), mean_violation (C,) -> (C,).
    """
    return (multipliers + lr * mean_violation).clamp(min=0.0, max=max_value)


def _mean(scores: Tensor, k: float) -> Tensor:
    return scores.mean(0)


def _min(scores: Tensor, k: float) -> Tensor:
    return scores.min(0).values


def _lower_bound(scores: Tensor, k: float) -> Tensor:
    return scores.mean(0) - k * scores.std(0, correction=0)


ENSEMBLE_RULES: dict[str, Callable[[Tensor, float], Tensor]] = {"mean": _mean, "min": _min, "lower_bound": _lower_bound}
"""Ensemble rule name -> fn(scores (M, N), k) -> (N,)."""


def combine_ensemble(scores: Tensor, rule: str, k: float = 1.0) -> Tensor:
    """The members' scores combined by `rule` (mean, min, or lower_bound = μ − k·σ).

    Shape: scores (M, N) -> (N,).
    """
    if rule not in ENSEMBLE_RULES:
        raise ValueError(f"unknown ensemble rule {rule!r}; valid: {', '.join(ENSEMBLE_RULES)}")
    if scores.dim() != 2 or scores.shape[0] < 1:
        raise ValueError(f"scores must be (members, items), got shape {tuple(scores.shape)}")
    return ENSEMBLE_RULES[rule](scores, k)


def ensemble_disagreement(scores: Tensor) -> Tensor:
    """σ_n = std over members (population, correction 0) of each item's scores.

    Shape: scores (M, N) -> (N,); the mean over a trajectory's steps is its disagreement.
    """
    return scores.std(0, correction=0)


def disagreement_kl_scale(disagreement: float, baseline: float, gain: float) -> float:
    """1 + gain · max(0, d / d₀ − 1): 1 until the disagreement rises above its baseline d₀ > 0."""
    if baseline <= 0:
        return 1.0
    return 1.0 + gain * max(0.0, disagreement / baseline - 1.0)

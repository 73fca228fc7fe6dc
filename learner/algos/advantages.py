"""Advantage estimators: one signature ``fn(AdvantageInputs, params) -> AdvantageOutputs``.

Rewards reach an estimator in two parts:

* ``rewards`` (B,): the outcome reward of each sample, credited to its last policy token;
* ``token_rewards`` (B, T), optional: dense rewards on policy tokens (process step
  rewards at step ends, a KL penalty placed in the reward, ...).

Token-level estimators (GAE, REINFORCE, REINFORCE++) use the sum of both per token.
Sequence-level (group) estimators use the sequence score
``score_i = rewards_i + Σ_t token_rewards_{i,t}`` and give every policy token of the
sample the same advantage.

Multi-turn: ``mask`` is 1 only on tokens the policy generated. Environment tokens
(mask 0) get advantage 0, and every recursion over time runs over the policy tokens
only, as if the environment tokens were cut out: the TD target of the last policy token
of turn k bootstraps from the value at the first policy token of turn k+1. Rewards or
values on mask-0 tokens are ignored.

All estimators run under ``torch.no_grad`` and return tensors without grad.

Group statistics (every estimator with a ``group_index``) are computed in float64, and a
group whose scores are equal within a relative 1e-6 (:func:`group_uniform`) is
zero-signal: its advantages are exactly 0. In float32, eight equal rewards of 2/3 have a
mean off by an ulp and a std of ~1e-8, and (s − mean)/(std + eps) would turn that
rounding into advantages of ±0.1. Outputs keep the dtype of ``rewards``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from outrider.config.names import AdvantageEstimatorName  # the Literal of this registry, generated (make catalog)

from .masked import (
    group_count,
    group_mean,
    group_std,
    group_sum,
    group_uniform,
    last_token_index,
    masked_sum,
    masked_whiten,
)
from .registry import NoParams, Params, Registry, param

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "AdvantageEstimatorName",
    "AdvantageInputs",
    "AdvantageOutputs",
    "GAEParams",
    "GRPOParams",
    "DrGRPOParams",
    "ReinforceParams",
    "ReinforcePPParams",
    "broadcast_to_tokens",
    "discounted_returns",
    "gae_scan",
    "group_scores",
    "sequence_scores",
    "token_level_rewards",
    "zero_uniform_groups",
]


@dataclass(frozen=True)
class AdvantageInputs:
    """Everything an advantage estimator may read. Optional fields default to None.

    Attributes:
        rewards: outcome reward per sample. Shape: (B,).
        mask: 1 on policy-generated tokens, 0 on prompt/environment/padding tokens.
            Shape: (B, T), bool or float.
        group_index: id of the prompt/task group of each sample (samples of the same
            prompt share an id; ids need not be contiguous). Shape: (B,) long.
        values: critic values V(s_t) at each token. Shape: (B, T).
        token_rewards: dense rewards on policy tokens. Shape: (B, T).
        step_mask: 1 at the last token of each scored step (where a process step
            reward sits in ``token_rewards``). Shape: (B, T).
    """

    rewards: Tensor
    mask: Tensor
    group_index: Tensor | None = None
    values: Tensor | None = None
    token_rewards: Tensor | None = None
    step_mask: Tensor | None = None

    def __post_init__(self) -> None:
        if self.mask.dim() != 2:
            raise ValueError(f"mask must be (B, T), got {tuple(self.mask.shape)}")
        b, t = self.mask.shape
        if tuple(self.rewards.shape) != (b,):
            raise ValueError(f"rewards must be ({b},), got {tuple(self.rewards.shape)}")
        if self.group_index is not None and tuple(self.group_index.shape) != (b,):
            raise ValueError(f"group_index must be ({b},), got {tuple(self.group_index.shape)}")
        for name in ("values", "token_rewards", "step_mask"):
            x = getattr(self, name)
            if x is not None and tuple(x.shape) != (b, t):
                raise ValueError(f"{name} must be ({b}, {t}), got {tuple(x.shape)}")


@dataclass(frozen=True)
class AdvantageOutputs:
    """Advantages (0 off the mask) and returns (value-regression targets, 0 off the mask).

    Shape: both (B, T).
    """

    advantages: Tensor
    returns: Tensor


AdvantageFn = Callable[[AdvantageInputs, Params], AdvantageOutputs]
ADVANTAGE_ESTIMATORS: Registry[AdvantageFn] = Registry("advantage estimator")


# ---------------------------------------------------------------------------- helpers


def token_level_rewards(inputs: AdvantageInputs, rewards: Tensor | None = None) -> Tensor:
    """r_t = token_rewards_t + [t = last policy token]·R, zero off the mask.

    ``rewards`` overrides ``inputs.rewards`` (used by baselines that shift R first).
    Shape: (B, T).
    """
    outcome = inputs.rewards if rewards is None else rewards
    mask = inputs.mask.bool()
    dtype = outcome.dtype
    dense = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    if inputs.token_rewards is not None:
        dense = torch.where(mask, inputs.token_rewards.to(dtype), dense)
    last = last_token_index(mask)
    has_tokens = mask.any(-1)
    dense[torch.arange(mask.shape[0], device=mask.device), last] += torch.where(
        has_tokens, outcome, torch.zeros_like(outcome)
    )
    return dense


def sequence_scores(inputs: AdvantageInputs) -> Tensor:
    """score_i = R_i + Σ_t token_rewards_{i,t} over policy tokens.  Shape: (B,)."""
    score = inputs.rewards
    if inputs.token_rewards is not None:
        score = score + masked_sum(inputs.token_rewards.to(score.dtype), inputs.mask, dim=-1)
    return score


def broadcast_to_tokens(per_sample: Tensor, mask: Tensor) -> Tensor:
    """Give each policy token its sample's scalar; 0 elsewhere.  Shape: (B,) -> (B, T)."""
    return torch.where(mask.bool(), per_sample[:, None], 0.0)


def gae_scan(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> Tensor:
    """Generalized advantage estimation over the policy tokens only (Schulman et al. 1506.02438).

    With p_1 < p_2 < ... < p_n the policy-token positions of a row (mask = 1):
        δ_j = r_{p_j} + γ·V_{p_{j+1}} − V_{p_j}          (V_{p_{n+1}} = 0: the episode ends)
        A_{p_j} = δ_j + γλ·A_{p_{j+1}}
    Environment tokens between turns are skipped, neither carrying advantage nor acting
    as a bootstrapping step; their rewards and values are never read.

    Shape: rewards, values, mask (B, T) -> advantages (B, T), 0 off the mask.
    """
    m = mask.bool()
    b, t_len = rewards.shape
    zero = torch.zeros(b, dtype=rewards.dtype, device=rewards.device)
    adv = torch.zeros_like(rewards)
    next_value, next_adv = zero, zero
    for t in range(t_len - 1, -1, -1):
        mt = m[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        a_t = delta + gamma * lam * next_adv
        # torch.where, not multiplication: a NaN on a masked token must not leak.
        adv[:, t] = torch.where(mt, a_t, zero)
        next_value = torch.where(mt, values[:, t], next_value)
        next_adv = torch.where(mt, a_t, next_adv)
    return adv


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """G_{p_j} = Σ_{k≥j} γ^{k−j} r_{p_k} over policy tokens (GAE with V = 0, λ = 1).

    Shape: (B, T) -> (B, T), 0 off the mask.
    """
    if gamma == 1.0:
        # Undiscounted: skipping env tokens is the same as zeroing them, so a reverse
        # cumulative sum does it in O(1) kernels instead of a loop over T.
        kept = torch.where(mask.bool(), rewards, 0.0)
        return torch.where(mask.bool(), kept.flip(-1).cumsum(-1).flip(-1), 0.0)
    return gae_scan(rewards, torch.zeros_like(rewards), mask, gamma, 1.0)


def _require_groups(inputs: AdvantageInputs) -> Tensor:
    assert inputs.group_index is not None  # Entry.check guarantees it
    return inputs.group_index


ZERO_SIGNAL_RTOL = 1e-6
"""Relative spread below which a group's scores count as equal (see :func:`group_uniform`)."""


def group_scores(inputs: AdvantageInputs) -> Tensor:
    """The sequence scores of :func:`sequence_scores`, summed in float64 for group statistics.

    Shape: (B,) float64.
    """
    score = inputs.rewards.to(torch.float64)
    if inputs.token_rewards is not None:
        score = score + masked_sum(inputs.token_rewards.to(torch.float64), inputs.mask, dim=-1)
    return score


def zero_uniform_groups(per_sample: Tensor, values: Tensor, group_index: Tensor) -> Tensor:
    """``per_sample`` with every sample of a zero-signal group (equal ``values``) set to 0.

    Shape: per_sample, values, group_index (B,) -> (B,).
    """
    uniform = group_uniform(values, group_index, ZERO_SIGNAL_RTOL)
    return torch.where(uniform, torch.zeros_like(per_sample), per_sample)


# ---------------------------------------------------------------------------- params


@dataclass(frozen=True)
class GAEParams(Params):
    gamma: float = param(1.0, "discount factor γ", ge=0.0, le=1.0)
    lam: float = param(0.95, "GAE trace parameter λ (1 = Monte Carlo, 0 = one-step TD)", ge=0.0, le=1.0)
    normalize: bool = param(True, "whiten advantages over all policy tokens of the batch")


@dataclass(frozen=True)
class GRPOParams(Params):
    norm_by_std: bool = param(True, "divide by the group's reward standard deviation")
    unbiased_std: bool = param(True, "Bessel-corrected group std (as torch.std)")
    eps: float = param(1e-6, "added to the std before dividing", gt=0.0)


@dataclass(frozen=True)
class DrGRPOParams(GRPOParams):
    norm_by_std: bool = param(False, "divide by the group's reward standard deviation")


@dataclass(frozen=True)
class ReinforceParams(Params):
    gamma: float = param(1.0, "discount factor γ for the reward-to-go", ge=0.0, le=1.0)


@dataclass(frozen=True)
class ReinforcePPParams(Params):
    gamma: float = param(1.0, "discount factor γ for the reward-to-go", ge=0.0, le=1.0)
    eps: float = param(1e-8, "added to the batch variance before dividing", gt=0.0)


# ---------------------------------------------------------------------------- estimators


@ADVANTAGE_ESTIMATORS.register("gae", params=GAEParams, requires=("values",))
@torch.no_grad()
def gae(inputs: AdvantageInputs, params: GAEParams) -> AdvantageOutputs:
    """GAE(γ, λ) with a value critic, multi-turn aware (Schulman et al. 1506.02438).

    A = gae_scan(r, V), returns = A + V (before normalization). See :func:`gae_scan`.
    Shape: values (B, T) required.
    """
    assert inputs.values is not None
    values = inputs.values.to(inputs.rewards.dtype)
    rewards = token_level_rewards(inputs)
    adv = gae_scan(rewards, values, inputs.mask, params.gamma, params.lam)
    returns = torch.where(inputs.mask.bool(), adv + values, torch.zeros_like(adv))
    if params.normalize:
        adv = masked_whiten(adv, inputs.mask)
    return AdvantageOutputs(adv, returns)


@ADVANTAGE_ESTIMATORS.register("dr_grpo", params=DrGRPOParams, requires=("group_index",))
@ADVANTAGE_ESTIMATORS.register("grpo", params=GRPOParams, requires=("group_index",))
@torch.no_grad()
def grpo(inputs: AdvantageInputs, params: GRPOParams) -> AdvantageOutputs:
    """Group-relative advantage (Shao et al. 2402.03300; Dr. GRPO: Liu et al. 2503.20783).

    A_i = (s_i − mean_g s) / (std_g s + eps)   if norm_by_std   ("grpo")
    A_i =  s_i − mean_g s                      otherwise        ("dr_grpo")
    with s_i the sequence score; every policy token of sample i gets A_i. Dr. GRPO also
    drops the 1/|y| length normalization: pair it with ``seq_mean_token_sum_norm``.
    A group of one sample, or of equal scores, has advantage 0 (statistics in float64).
    Returns: undiscounted reward-to-go.
    """
    g = _require_groups(inputs)
    score = group_scores(inputs)
    adv = score - group_mean(score, g)
    if params.norm_by_std:
        adv = adv / (group_std(score, g, unbiased=params.unbiased_std) + params.eps)
    adv = zero_uniform_groups(adv, score, g).to(inputs.rewards.dtype)
    returns = discounted_returns(token_level_rewards(inputs), inputs.mask, 1.0)
    return AdvantageOutputs(broadcast_to_tokens(adv, inputs.mask), returns)


@ADVANTAGE_ESTIMATORS.register("rloo", params=NoParams, requires=("group_index",))
@torch.no_grad()
def rloo(inputs: AdvantageInputs, params: NoParams) -> AdvantageOutputs:
    """REINFORCE leave-one-out (Kool et al. 2019, ICLR DeepRL workshop; Ahmadian et al. 2402.14740).

    A_i = s_i − (1/(G−1)) Σ_{j≠i} s_j = G/(G−1)·(s_i − mean_g s); 0 for a group of one
    (no other sample to form a baseline) and for a group of equal scores (float64).
    Returns: undiscounted reward-to-go.
    """
    g = _require_groups(inputs)
    score = group_scores(inputs)
    n = group_count(g, score.dtype)
    others = (group_sum(score, g) - score) / (n - 1).clamp(min=1.0)
    adv = torch.where(n > 1, score - others, torch.zeros_like(score))
    adv = zero_uniform_groups(adv, score, g).to(inputs.rewards.dtype)
    returns = discounted_returns(token_level_rewards(inputs), inputs.mask, 1.0)
    return AdvantageOutputs(broadcast_to_tokens(adv, inputs.mask), returns)


@ADVANTAGE_ESTIMATORS.register("reinforce", params=ReinforceParams)
@torch.no_grad()
def reinforce(inputs: AdvantageInputs, params: ReinforceParams) -> AdvantageOutputs:
    """Plain REINFORCE, no baseline (Williams 1992): A_t = G_t = Σ_{k≥t} γ^{k−t} r_k.

    The estimator of the PSR/NSR study (Zhu et al. 2506.01347) with rewards ±1.
    """
    returns = discounted_returns(token_level_rewards(inputs), inputs.mask, params.gamma)
    return AdvantageOutputs(returns.clone(), returns)


@ADVANTAGE_ESTIMATORS.register("reinforce_pp", params=ReinforcePPParams)
@torch.no_grad()
def reinforce_pp(inputs: AdvantageInputs, params: ReinforcePPParams) -> AdvantageOutputs:
    """REINFORCE++ (Hu et al. 2501.03262): reward-to-go whitened over the global batch.

    G_t = Σ_{k≥t} γ^{k−t} r_k (r includes any per-token KL penalty);
    A_t = (G_t − μ)/sqrt(σ² + eps), μ, σ² over all policy tokens of the batch.
    Call it on the whole global batch: the statistics are batch statistics.
    """
    returns = discounted_returns(token_level_rewards(inputs), inputs.mask, params.gamma)
    adv = masked_whiten(returns, inputs.mask, eps=params.eps)
    return AdvantageOutputs(adv, returns)


@ADVANTAGE_ESTIMATORS.register(
    "reinforce_pp_baseline", params=ReinforcePPParams, requires=("group_index",)
)
@torch.no_grad()
def reinforce_pp_baseline(inputs: AdvantageInputs, params: ReinforcePPParams) -> AdvantageOutputs:
    """REINFORCE++-baseline (Hu et al. 2501.03262): group-mean baseline, then global whitening.

    R'_i = R_i − mean_g R;   G_t = reward-to-go of (token_rewards + R' at the last token);
    A_t = (G_t − μ)/sqrt(σ² + eps) over all policy tokens of the batch.
    The group mean is taken in float64; a group of equal rewards has R' = 0 exactly.
    """
    g = _require_groups(inputs)
    rewards = inputs.rewards.to(torch.float64)
    shifted = zero_uniform_groups(rewards - group_mean(rewards, g), rewards, g).to(inputs.rewards.dtype)
    returns = discounted_returns(token_level_rewards(inputs, shifted), inputs.mask, params.gamma)
    adv = masked_whiten(returns, inputs.mask, eps=params.eps)
    unshifted = discounted_returns(token_level_rewards(inputs), inputs.mask, params.gamma)
    return AdvantageOutputs(adv, unshifted)


@ADVANTAGE_ESTIMATORS.register("opo", params=NoParams, requires=("group_index",))
@torch.no_grad()
def opo(inputs: AdvantageInputs, params: NoParams) -> AdvantageOutputs:
    """OPO: length-weighted optimal baseline (Hao et al. 2505.23585).

    b*_g = Σ_{j∈g} l_j s_j / Σ_{j∈g} l_j with l_j the number of policy tokens of sample j;
    A_i = s_i − b*_g. Under token-level aggregation this baseline minimizes the gradient
    variance when per-token score-function terms are roughly independent. A group of
    equal scores has advantage 0 (statistics in float64).
    """
    g = _require_groups(inputs)
    score = group_scores(inputs)
    length = inputs.mask.to(score.dtype).sum(-1)
    baseline = group_sum(length * score, g) / group_sum(length, g).clamp(min=1.0)
    adv = zero_uniform_groups(score - baseline, score, g).to(inputs.rewards.dtype)
    returns = discounted_returns(token_level_rewards(inputs), inputs.mask, 1.0)
    return AdvantageOutputs(broadcast_to_tokens(adv, inputs.mask), returns)

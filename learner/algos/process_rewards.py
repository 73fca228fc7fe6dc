"""Process (step) rewards: PRM step scores -> step rewards, and a process-aware estimator.

A process reward model scores the prefix ending at each step k with s_k. Crediting the
raw score at every step rewards long traces that keep a decent score; crediting the
*change* r_k = s_k − s_{k−1} instead is potential-based shaping (Ng, Harada & Russell,
ICML 1999) with potential s: the rewards telescope, Σ_k r_k = s_K − s_0, so the shaped
return of a trace depends only on its final score and the optimal policy is unchanged,
while each step is credited with the progress it made (cf. Setlur et al. 2410.08146,
"Rewarding Progress").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .advantages import (
    ADVANTAGE_ESTIMATORS,
    ZERO_SIGNAL_RTOL,
    AdvantageInputs,
    AdvantageOutputs,
    broadcast_to_tokens,
    discounted_returns,
    token_level_rewards,
    zero_uniform_groups,
)
from .masked import group_mean, group_std, group_sum, group_uniform
from .registry import Params, param

__all__ = ["GRPOProcessParams", "grpo_process", "step_rewards_from_scores"]


@torch.no_grad()
def step_rewards_from_scores(
    step_scores: Tensor, step_mask: Tensor, initial_score: float = 0.0
) -> Tensor:
    """r_k = s_k − s_{k−1} at the last token of step k, 0 elsewhere; s_0 = ``initial_score``.

    ``step_scores`` is read only where ``step_mask`` is 1 (the PRM score of the prefix that
    ends at that token). Combine with the outcome reward by passing the result as
    ``AdvantageInputs.token_rewards`` (the outcome stays in ``AdvantageInputs.rewards``).

    Shape: step_scores, step_mask (B, T) -> (B, T).
    """
    m = step_mask.bool()
    t = m.shape[-1]
    pos = torch.arange(t, device=m.device).expand_as(m)
    # Position of the latest step end at or before each token, then shifted by one so
    # that each step end looks at the previous one (strictly before it).
    last_at_or_before = torch.where(m, pos, torch.full_like(pos, -1)).cummax(-1).values
    prev = torch.cat([torch.full_like(pos[:, :1], -1), last_at_or_before[:, :-1]], dim=-1)
    prev_score = torch.where(
        prev >= 0,
        step_scores.gather(-1, prev.clamp(min=0)),
        float(initial_score),
    )
    return torch.where(m, step_scores - prev_score, 0.0)


@dataclass(frozen=True)
class GRPOProcessParams(Params):
    norm_by_std: bool = param(True, "divide outcome and step rewards by their group std")
    unbiased_std: bool = param(True, "Bessel-corrected group std (as torch.std)")
    eps: float = param(1e-6, "added to the std before dividing", gt=0.0)


@ADVANTAGE_ESTIMATORS.register(
    "grpo_process", params=GRPOProcessParams, requires=("group_index", "token_rewards", "step_mask")
)
@torch.no_grad()
def grpo_process(inputs: AdvantageInputs, params: GRPOProcessParams) -> AdvantageOutputs:
    """GRPO with process supervision plus the outcome (Shao et al. 2402.03300, §4.1.3).

    Step rewards r (``token_rewards`` at ``step_mask`` positions, e.g. from
    :func:`step_rewards_from_scores`) are normalized over all steps of all samples in the
    group, r̃ = (r − mean_g r)/(std_g r + eps); each token gets the sum of the normalized
    step rewards at or after it, plus the GRPO-normalized outcome reward:
        A_t = (R_i − mean_g R)/(std_g R + eps) + Σ_{step k ends at ≥ t} r̃_k.
    Without ``norm_by_std`` both parts are only mean-centered. Token rewards off the
    step mask (e.g. a KL penalty) are ignored here. Statistics run in float64, and a group
    whose outcome rewards (or whose step rewards) are all equal gets 0 for that part.
    Returns: undiscounted reward-to-go.
    """
    assert inputs.group_index is not None and inputs.token_rewards is not None
    assert inputs.step_mask is not None
    g = inputs.group_index
    dtype = torch.float64
    mask = inputs.mask.bool()
    steps = inputs.step_mask.bool() & mask
    r = torch.where(steps, inputs.token_rewards.to(dtype), 0.0)

    rewards = inputs.rewards.to(dtype)
    outcome = rewards - group_mean(rewards, g)
    if params.norm_by_std:
        outcome = outcome / (group_std(rewards, g, params.unbiased_std) + params.eps)
    outcome = zero_uniform_groups(outcome, rewards, g)

    # Group statistics over the step rewards of every sample in the group.
    n_steps = group_sum(steps.to(dtype).sum(-1), g)
    mean = group_sum(r.sum(-1), g) / n_steps.clamp(min=1.0)
    centered = torch.where(steps, r - mean[:, None], 0.0)
    normalized = centered
    if params.norm_by_std:
        ss = group_sum((centered**2).sum(-1), g)
        denom = (n_steps - 1).clamp(min=1.0) if params.unbiased_std else n_steps.clamp(min=1.0)
        normalized = centered / (torch.sqrt(ss / denom)[:, None] + params.eps)
    uniform = torch.zeros_like(steps)
    uniform[steps] = group_uniform(r[steps], g[:, None].expand_as(steps)[steps], ZERO_SIGNAL_RTOL)
    normalized = torch.where(uniform, 0.0, normalized)

    # Σ over step ends at or after t, running over policy tokens only.
    process = discounted_returns(normalized, mask, 1.0)
    adv = (broadcast_to_tokens(outcome, mask) + process).to(inputs.rewards.dtype)
    returns = discounted_returns(token_level_rewards(inputs), mask, 1.0)
    return AdvantageOutputs(adv, returns)

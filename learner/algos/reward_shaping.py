"""Outcome-reward shaping: ``fn(RewardShapingInputs, params) -> rewards (B,)``.

A shaping rewrites the outcome reward of each sample before the advantage estimator sees
it. The learner applies the configured shapings in order (``algorithm.reward_shaping``),
on the samples it trains on only (infra-failed episodes are not part of any group, see
``failures.py``); the reward recorded in the trajectory, which the curriculum and the
metrics see, stays what the environment or verifier said.

Shapings that need the whole group (the Kimi length penalty compares a response with the
other responses to the same prompt) live here, in the learner, because the learner is
where a group's samples are together as tensors. Per-response rules that a verifier can
apply to one response alone (DAPO's soft overlong punishment) live in
``off_policy.overlong_penalty`` and the reward service's ``length`` verifier.

``lengths`` are the tokens the policy generated in the episode (all turns), the unit both
papers use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from outrider.config.names import RewardShapingName  # generated (make catalog)

from .registry import Params, Registry, param

__all__ = [
    "REWARD_SHAPINGS",
    "KimiLengthParams",
    "Long2ShortParams",
    "RewardShapingInputs",
    "RewardShapingName",
    "kimi_length_reward",
]


@dataclass(frozen=True)
class RewardShapingInputs:
    """Attributes:
    rewards: outcome reward per sample. Shape: (B,).
    lengths: tokens the policy generated in the sample's episode. Shape: (B,).
    correct: the environment judged the task solved (``Trajectory.solved``). Shape: (B,) bool.
    group_index: the sample's group (prompt) id. Shape: (B,) long.
    step: learner steps completed before this one (for warm-ups).
    """

    rewards: Tensor
    lengths: Tensor
    correct: Tensor
    group_index: Tensor
    step: int = 0

    def __post_init__(self) -> None:
        b = tuple(self.rewards.shape)
        if len(b) != 1:
            raise ValueError(f"rewards must be (B,), got {b}")
        for name in ("lengths", "correct", "group_index"):
            x = getattr(self, name)
            if tuple(x.shape) != b:
                raise ValueError(f"{name} must have shape {b}, got {tuple(x.shape)}")


ShapingFn = Callable[[RewardShapingInputs, Params], Tensor]
REWARD_SHAPINGS: Registry[ShapingFn] = Registry("reward shaping")


def _group_extreme(x: Tensor, group_index: Tensor, how: str) -> Tensor:
    _, inverse = torch.unique(group_index, return_inverse=True)
    g = int(inverse.max()) + 1 if inverse.numel() else 0
    start = float("-inf") if how == "amax" else float("inf")
    out = torch.full((g,), start, dtype=x.dtype, device=x.device).scatter_reduce(0, inverse, x, how)
    return out[inverse]


def kimi_length_reward(lengths: Tensor, correct: Tensor, group_index: Tensor) -> Tensor:
    """Kimi k1.5's correctness-aware length reward (Kimi Team, 2501.12599, §2.3.3):

        λ_i = 0.5 − (len_i − min_len) / (max_len − min_len)     over the sample's group
        len_reward_i = λ_i             if the response is correct
                     = min(0, λ_i)     if it is not
    and 0 for every sample of a group whose lengths are all equal. The shortest correct
    response gets +0.5, the longest −0.5; incorrect responses are never rewarded for being
    short, only penalised for being long. Computed in float64.
    Shape: (B,) -> (B,) float64.
    """
    length = lengths.to(torch.float64)
    lo = _group_extreme(length, group_index, "amin")
    hi = _group_extreme(length, group_index, "amax")
    span = hi - lo
    lam = 0.5 - (length - lo) / torch.where(span > 0, span, torch.ones_like(span))
    reward = torch.where(correct.bool(), lam, lam.clamp(max=0.0))
    return torch.where(span > 0, reward, torch.zeros_like(reward))


@dataclass(frozen=True)
class KimiLengthParams(Params):
    weight: float = param(1.0, "multiplier w of the length reward added to the outcome reward", ge=0.0)
    warmup_steps: int = param(
        0, "learner steps without the penalty first (Kimi warms up: it slows early training)", ge=0
    )


@REWARD_SHAPINGS.register("kimi_length", params=KimiLengthParams)
def kimi_length(inputs: RewardShapingInputs, params: KimiLengthParams) -> Tensor:
    """Kimi k1.5 length penalty (2501.12599, §2.3.3): R'_i = R_i + w · len_reward_i.

    ``len_reward`` from :func:`kimi_length_reward` (correctness from ``correct``); applied
    once ``step ≥ warmup_steps``. Shape: (B,) -> (B,) in the dtype of ``rewards``.
    """
    if inputs.step < params.warmup_steps or params.weight == 0.0:
        return inputs.rewards
    bonus = kimi_length_reward(inputs.lengths, inputs.correct, inputs.group_index)
    return (inputs.rewards.to(torch.float64) + params.weight * bonus).to(inputs.rewards.dtype)


@dataclass(frozen=True)
class Long2ShortParams(Params):
    alpha: float = param(
        0.2, "penalty α per budget's worth of tokens; below 1, any correct response in budget outranks any incorrect one", ge=0.0
    )
    budget: int = param(1024, "token budget L: the count's unit, and longer responses lose their reward", gt=0)


@REWARD_SHAPINGS.register("long2short", params=Long2ShortParams)
def long2short(inputs: RewardShapingInputs, params: Long2ShortParams) -> Tensor:
    """Long2Short reward: correctness plus a token-count penalty (Kimi k1.5's long2short RL,
    2501.12599, §2.4, in the per-response form):

        R'_i = R_i · [n_i ≤ L] − α · min(n_i, L) / L
    with R the outcome (correctness) reward, n_i the response's tokens and L the budget:
    every token costs α/L, and a response over the budget loses its reward even when
    correct (Kimi's reduced maximum length in the long2short phase). For R ∈ {0, 1} and
    α < 1 a correct response within budget always scores above an incorrect one.
    Shape: (B,) -> (B,) in the dtype of ``rewards``.
    """
    n = inputs.lengths.to(torch.float64)
    reward = inputs.rewards.to(torch.float64)
    within = n <= params.budget
    shaped = torch.where(within, reward, torch.zeros_like(reward)) - params.alpha * n.clamp(max=params.budget) / params.budget
    return shaped.to(inputs.rewards.dtype)

"""On-policy distillation: the student's own samples, scored token by token by a frozen teacher.

The student π_θ samples y; the teacher π_T scores the same tokens. At each sampled
position t the per-token reverse KL is estimated on the sampled token:

    d_t = log π_θ(y_t) − log π_T(y_t),    E_{y_t ~ π_θ}[d_t] = KL(π_θ(·|s_t) ‖ π_T(·|s_t))

Reverse KL on the student's own states is mode-seeking and needs no teacher rollouts
(Agarwal et al., GKD, arXiv 2306.13649; Lu & Thinking Machines, "On-Policy
Distillation", 2025). Two placements:

* ``advantage``: A_t ← rl_coef·A_t^RL + coef·A_t^D with A_t^D = −d_t measured with
  π_old (detached) and discount 0. The policy-gradient loss −r_t·A_t^D then has, per
  position, the expected gradient E[d_t ∇log π_θ(y_t)] = ∇_θ KL(π_θ‖π_T)(s_t) (the
  score-function term; E[∇log π] = 0 removes the other), the Thinking Machines recipe.
* ``loss``: token_loss ← rl_coef·policy_loss + coef·k(log π_θ, log π_T) with a KL
  estimator k from ``kl.py`` whose gradient is right: ``k2`` (on-policy) and ``k3_is``
  give ∇ KL(π_θ‖π_T), ``k3`` gives the forward KL's ∇ KL(π_T‖π_θ). ``k1``'s expected
  gradient is 0, so it is refused for this placement by the config.

``rl_coef`` = 0 trains on distillation alone. A teacher equal to the student gives d = 0:
no advantage, no loss, no gradient (tested with the real learner).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from .registry import lookup

__all__ = [
    "DISTILL_PLACEMENTS",
    "DistillPlacement",
    "DistillPlacementName",
    "distilled_advantages",
    "distilled_loss",
    "get_distill_placement",
    "reverse_kl_advantages",
]

DistillPlacementName = Literal["advantage", "loss", "none"]


@dataclass(frozen=True)
class DistillPlacement:
    """Where the teacher's signal enters: into the advantages or as a loss term."""

    in_advantage: bool
    in_loss: bool

    @property
    def uses_teacher(self) -> bool:
        return self.in_advantage or self.in_loss


DISTILL_PLACEMENTS: dict[str, DistillPlacement] = {
    "advantage": DistillPlacement(in_advantage=True, in_loss=False),
    "loss": DistillPlacement(in_advantage=False, in_loss=True),
    "none": DistillPlacement(in_advantage=False, in_loss=False),
}


def get_distill_placement(name: str) -> DistillPlacement:
    """The placement called ``name``; an unknown name raises, listing the valid ones."""
    return lookup(DISTILL_PLACEMENTS, name, "distillation placement")


def reverse_kl_advantages(student_logprobs: Tensor, teacher_logprobs: Tensor, mask: Tensor) -> Tensor:
    """A_t^D = −(log π_s(y_t) − log π_T(y_t)) on the mask, 0 elsewhere (NaN-safe), detached.

    ``student_logprobs`` are the sampling policy's (π_old) log-probs of the sampled tokens.
    Shape: (B, T) each.
    """
    if student_logprobs.shape != teacher_logprobs.shape or student_logprobs.shape != mask.shape:
        raise ValueError(
            f"student_logprobs {tuple(student_logprobs.shape)}, teacher_logprobs "
            f"{tuple(teacher_logprobs.shape)} and mask {tuple(mask.shape)} must have one shape"
        )
    gap = teacher_logprobs.detach() - student_logprobs.detach()
    return torch.where(mask.bool(), gap, torch.zeros_like(gap))


def distilled_advantages(
    rl_advantages: Tensor,
    student_logprobs: Tensor,
    teacher_logprobs: Tensor,
    mask: Tensor,
    coef: float,
    rl_coef: float,
) -> Tensor:
    """A_t = rl_coef·A_t^RL + coef·(log π_T(y_t) − log π_old(y_t)), 0 off the mask.

    The ``advantage`` placement (discount 0: each token answers for its own KL only).
    Shape: (B, T) each.
    """
    distill = reverse_kl_advantages(student_logprobs, teacher_logprobs, mask)
    rl = torch.where(mask.bool(), rl_advantages, torch.zeros_like(rl_advantages))
    return rl_coef * rl + coef * distill


def distilled_loss(policy_loss: Tensor, kl: Tensor, mask: Tensor, coef: float, rl_coef: float) -> Tensor:
    """token_loss = rl_coef·policy_loss + coef·k_t, 0 off the mask (the ``loss`` placement).

    ``kl`` is a KL estimator's per-token value between π_θ (with grad) and π_T.
    Shape: (B, T) each.
    """
    total = rl_coef * policy_loss + coef * kl
    return torch.where(mask.bool(), total, torch.zeros_like(total))

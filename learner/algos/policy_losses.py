"""Policy losses ``fn(PolicyLossInputs, params) -> PolicyLossOutput`` and loss transforms
``fn(PolicyLossInputs, params) -> TransformOutput``, plus the clipped value loss.

A policy loss returns a per-token loss matrix (B, T), 0 off the mask and multiplied by
``is_weights`` (rollout/trainer importance correction), and a dict of scalar metrics. A
registry of aggregations (``aggregation.py``) reduces the matrix to the scalar to
differentiate. A loss transform rewrites the inputs before the loss (advantage shaping,
token masks, importance weights); the learner applies the configured transforms in
order, then the loss, then the aggregation, all by name through the registries.

Notation: r_t = π_θ(y_t)/π_old(y_t) = exp(logprobs − old_logprobs), A_t the advantage.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from outrider.config.names import LossTransformName, PolicyLossName  # generated (make catalog)

from .kl import KLController, PPOAdaptiveKLController
from .masked import masked_mean
from .metrics import ratio_metrics
from .registry import NoParams, Params, Registry, param

__all__ = [
    "LOSS_TRANSFORMS",
    "POLICY_LOSSES",
    "CISPOParams",
    "ClipHigherParams",
    "ClipParams",
    "DualClipParams",
    "GSPOParams",
    "LossTransformName",
    "PPOKLParams",
    "PenaltyParams",
    "PolicyLossInputs",
    "PolicyLossName",
    "PolicyLossOutput",
    "TransformOutput",
    "ValueLossInputs",
    "ValueLossParams",
    "clipped_surrogate",
    "finish_loss",
    "log_ratio",
    "sequence_log_ratio",
    "value_loss",
]

# exp(±20) ≈ 5e8: beyond this the ratio is meaningless and would overflow in half precision.
MAX_LOG_RATIO = 20.0


@dataclass(frozen=True)
class PolicyLossInputs:
    """Everything a policy loss or loss transform may read.

    Attributes:
        logprobs: log π_θ(y_t) of the current policy, with grad. Shape: (B, T).
        old_logprobs: log π_old(y_t) of the policy that the ratio is taken against
            (the trainer's recomputation of the behaviour policy); detached inside.
            Shape: (B, T).
        advantages: A_t. Shape: (B, T).
        mask: 1 on tokens to train on (policy tokens). Shape: (B, T), bool or float.
        entropy: entropy of π_θ at each position (see ``metrics.entropy_from_logits``);
            detached where used. Shape: (B, T).
        rollout_logprobs: log-probs reported by the inference engine that sampled the
            tokens (may differ from ``old_logprobs``: kernels, precision). Shape: (B, T).
        rollout_lags: V − v_t, how many versions older than π_old (version V) the weights
            that sampled each token were; with partial rollouts the segments of one
            sequence differ. 0 off the mask. Shape: (B, T).
        is_weights: detached per-token multipliers of the loss (truncated importance
            sampling); None means 1. Shape: (B, T).
        generator: source of randomness (Clip-Cov's random subset), for reproducibility.
        penalty_coef: the coefficient β of a loss whose penalty weight is learner state
            (``ppo_kl``), kept by the controller its :class:`PenaltyParams` make.
    """

    logprobs: Tensor
    old_logprobs: Tensor
    advantages: Tensor
    mask: Tensor
    entropy: Tensor | None = None
    rollout_logprobs: Tensor | None = None
    rollout_lags: Tensor | None = None
    is_weights: Tensor | None = None
    generator: torch.Generator | None = None
    penalty_coef: float | None = None

    def __post_init__(self) -> None:
        shape = tuple(self.logprobs.shape)
        if len(shape) != 2:
            raise ValueError(f"logprobs must be (B, T), got {shape}")
        for name in ("old_logprobs", "advantages", "mask", "entropy", "rollout_logprobs", "rollout_lags", "is_weights"):
            x = getattr(self, name)
            if x is not None and tuple(x.shape) != shape:
                raise ValueError(f"{name} must have shape {shape}, got {tuple(x.shape)}")

    def replace(self, **changes: object) -> "PolicyLossInputs":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class PolicyLossOutput:
    """Per-token loss (0 off the mask) and detached scalar metrics.  Shape: loss (B, T)."""

    loss: Tensor
    metrics: dict[str, Tensor]


@dataclass(frozen=True)
class TransformOutput:
    """The rewritten inputs and detached scalar metrics of a loss transform."""

    inputs: PolicyLossInputs
    metrics: dict[str, Tensor]


PolicyLossFn = Callable[[PolicyLossInputs, Params], PolicyLossOutput]
TransformFn = Callable[[PolicyLossInputs, Params], TransformOutput]
POLICY_LOSSES: Registry[PolicyLossFn] = Registry("policy loss")
LOSS_TRANSFORMS: Registry[TransformFn] = Registry("loss transform")


# ---------------------------------------------------------------------------- helpers


def log_ratio(inputs: PolicyLossInputs) -> Tensor:
    """log r_t = log π_θ − sg(log π_old), clamped to ±20.  Shape: (B, T)."""
    return (inputs.logprobs - inputs.old_logprobs.detach()).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)


def sequence_log_ratio(logprobs: Tensor, old_logprobs: Tensor, mask: Tensor) -> Tensor:
    """GSPO's length-normalized sequence log-ratio (Zheng et al. 2507.18071):

        log s_i = (1/|y_i|) Σ_t (log π_θ − log π_old),   s_i = (Π_t r_t)^{1/|y_i|},
    the log of the geometric mean of the token ratios.  Shape: (B, T) -> (B,).
    """
    return masked_mean(logprobs - old_logprobs.detach(), mask, dim=-1)


def finish_loss(loss: Tensor, inputs: PolicyLossInputs) -> Tensor:
    """Multiply by ``is_weights`` and zero the loss off the mask (with where: no NaN leaks)."""
    if inputs.is_weights is not None:
        loss = loss * inputs.is_weights.detach()
    return torch.where(inputs.mask.bool(), loss, 0.0)


def clipped_surrogate(
    log_r: Tensor,
    advantages: Tensor,
    mask: Tensor,
    eps_low: float,
    eps_high: float,
    dual_clip_c: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO's pessimistic clipped surrogate, per token (Schulman et al. 1707.06347):

        L_t = max(−A r, −A clip(r, 1 − ε_low, 1 + ε_high))
    ε_low ≠ ε_high is DAPO's clip-higher (Yu et al. 2503.14476). With dual clip
    (Ye et al. 1912.09729), for A < 0 the loss is also capped at −c·A (c > 1), so a huge
    ratio on a negative-advantage token cannot produce an unbounded update.
    Shape: (B, T) -> loss (B, T), metrics.
    """
    ratio = torch.exp(log_r)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - eps_low, 1.0 + eps_high)
    loss = torch.maximum(unclipped, clipped)
    with torch.no_grad():
        metrics = {
            "clip_frac": masked_mean((clipped > unclipped).to(ratio.dtype), mask),
            "clip_frac_low": masked_mean(((ratio < 1 - eps_low) & (advantages < 0)).to(ratio.dtype), mask),
            "clip_frac_high": masked_mean(
                ((ratio > 1 + eps_high) & (advantages > 0)).to(ratio.dtype), mask
            ),
        }
    if dual_clip_c is not None:
        cap = -advantages * dual_clip_c
        negative = advantages < 0
        with torch.no_grad():
            metrics["dual_clip_frac"] = masked_mean((negative & (loss > cap)).to(ratio.dtype), mask)
        loss = torch.where(negative, torch.minimum(loss, cap), loss)
    return loss, metrics


# ---------------------------------------------------------------------------- params


@dataclass(frozen=True)
class ClipParams(Params):
    clip_eps_low: float = param(
        0.2, "lower clip range ε_low: ratio clipped below at 1 − ε_low", ge=0.0, lt=1.0
    )
    clip_eps_high: float = param(
        0.2, "upper clip range ε_high: ratio clipped above at 1 + ε_high", ge=0.0
    )
    dual_clip_c: float | None = param(
        None, "dual-clip cap c (> 1) for negative advantages; None disables", gt=1.0
    )


@dataclass(frozen=True)
class DualClipParams(ClipParams):
    dual_clip_c: float | None = param(
        3.0, "dual-clip cap c (> 1) for negative advantages; None disables", gt=1.0
    )


@dataclass(frozen=True)
class ClipHigherParams(ClipParams):
    clip_eps_high: float = param(
        0.28, "upper clip range ε_high: ratio clipped above at 1 + ε_high", ge=0.0
    )


@dataclass(frozen=True)
class GSPOParams(Params):
    clip_eps_low: float = param(3e-4, "lower clip range of the sequence ratio", ge=0.0, lt=1.0)
    clip_eps_high: float = param(4e-4, "upper clip range of the sequence ratio", ge=0.0)


@dataclass(frozen=True)
class CISPOParams(Params):
    clip_eps_low: float | None = param(
        None, "IS weight truncated below at 1 − ε_low; None: no lower bound", ge=0.0, le=1.0
    )
    clip_eps_high: float | None = param(
        0.28, "IS weight truncated above at 1 + ε_high; None: no upper bound", ge=0.0
    )


# ---------------------------------------------------------------------------- losses


@POLICY_LOSSES.register("clip_higher", params=ClipHigherParams)
@POLICY_LOSSES.register("dual_clip", params=DualClipParams)
@POLICY_LOSSES.register("ppo_clip", params=ClipParams)
def ppo_clip(inputs: PolicyLossInputs, params: ClipParams) -> PolicyLossOutput:
    """PPO-clip, dual-clip and clip-higher: L_t = max(−A r, −A clip(r, 1−ε_low, 1+ε_high)).

    Schulman et al. 1707.06347; dual clip: Ye et al. 1912.09729 (L_t ≤ −c·A when A < 0);
    clip-higher: Yu et al. 2503.14476 (DAPO, ε_high = 0.28 > ε_low = 0.2).
    At r = 1 the gradient is −A ∇log π, REINFORCE's.
    """
    lr = log_ratio(inputs)
    loss, metrics = clipped_surrogate(
        lr, inputs.advantages, inputs.mask, params.clip_eps_low, params.clip_eps_high, params.dual_clip_c
    )
    metrics.update(ratio_metrics(lr.detach(), inputs.mask))
    return PolicyLossOutput(finish_loss(loss, inputs), metrics)


@POLICY_LOSSES.register("gspo", params=GSPOParams)
def gspo(inputs: PolicyLossInputs, params: GSPOParams) -> PolicyLossOutput:
    """GSPO: clip the length-normalized sequence ratio (Zheng et al. 2507.18071).

    s_i = (Π_t r_t)^{1/|y_i|}; GSPO-token form s_{i,t} = sg(s_i)·π_θ(y_t)/sg(π_θ(y_t)),
        L_{i,t} = max(−A_{i,t} s_{i,t}, −A_{i,t} clip(s_{i,t}, 1 − ε_low, 1 + ε_high)).
    Every token of a sequence carries the value s_i and ∇s_{i,t} = s_i ∇log π_θ(y_t), so
    with a sequence-level advantage and ``seq_mean_token_mean`` aggregation the gradient
    is exactly that of the sequence objective −(1/B) Σ_i min(s_i A_i, clip(s_i) A_i);
    clipping decisions are per sequence.
    """
    seq = sequence_log_ratio(inputs.logprobs, inputs.old_logprobs, inputs.mask)
    seq = seq.detach().clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    token_lr = seq[:, None] + inputs.logprobs - inputs.logprobs.detach()
    loss, metrics = clipped_surrogate(
        token_lr, inputs.advantages, inputs.mask, params.clip_eps_low, params.clip_eps_high
    )
    with torch.no_grad():
        metrics.update(ratio_metrics(log_ratio(inputs).detach(), inputs.mask))
        metrics["seq_ratio_mean"] = torch.exp(seq).mean()
    return PolicyLossOutput(finish_loss(loss, inputs), metrics)


@POLICY_LOSSES.register("cispo", params=CISPOParams)
def cispo(inputs: PolicyLossInputs, params: CISPOParams) -> PolicyLossOutput:
    """CISPO: clip the importance weight, not the update (MiniMax-M1, 2506.13585).

        L_t = −sg(clip(r_t, 1 − ε_low, 1 + ε_high)) · A_t · log π_θ(y_t)
    a token-level REINFORCE whose weight is truncated and detached: unlike PPO, tokens
    with clipped ratios keep their (bounded) gradient. Implemented as
    −sg(ŵ)·A·exp(log π − sg(log π)), whose value is −ŵ·A and gradient −ŵ·A·∇log π.
    """
    lr = log_ratio(inputs)
    ratio = torch.exp(lr.detach())
    lo = None if params.clip_eps_low is None else 1.0 - params.clip_eps_low
    hi = None if params.clip_eps_high is None else 1.0 + params.clip_eps_high
    weight = ratio.clamp(min=lo, max=hi)
    unit = torch.exp(inputs.logprobs - inputs.logprobs.detach())
    loss = -weight * inputs.advantages * unit
    with torch.no_grad():
        metrics = ratio_metrics(lr.detach(), inputs.mask)
        below = ratio < lo if lo is not None else torch.zeros_like(ratio, dtype=torch.bool)
        above = ratio > hi if hi is not None else torch.zeros_like(ratio, dtype=torch.bool)
        metrics["clip_frac_low"] = masked_mean(below.to(ratio.dtype), inputs.mask)
        metrics["clip_frac_high"] = masked_mean(above.to(ratio.dtype), inputs.mask)
        metrics["clip_frac"] = metrics["clip_frac_low"] + metrics["clip_frac_high"]
    return PolicyLossOutput(finish_loss(loss, inputs), metrics)


@POLICY_LOSSES.register("pg", params=NoParams)
def pg(inputs: PolicyLossInputs, params: NoParams) -> PolicyLossOutput:
    """Unclipped importance-weighted policy gradient: L_t = −A_t r_t (Williams 1992).

    On-policy (r = 1) this is REINFORCE; the loss of the PSR/NSR study (Zhu et al. 2506.01347).
    """
    lr = log_ratio(inputs)
    loss = -inputs.advantages * torch.exp(lr)
    return PolicyLossOutput(finish_loss(loss, inputs), ratio_metrics(lr.detach(), inputs.mask))


# ---------------------------------------------------------------------------- adaptive penalty


@dataclass(frozen=True)
class PenaltyParams(Params):
    """Params of a loss whose penalty coefficient changes during training.

    The learner keeps the controller that :meth:`make_controller` returns, passes its
    ``value`` as ``PolicyLossInputs.penalty_coef``, updates it after every step with the
    step's measured KL(π_old‖π_θ) and checkpoints its ``state_dict``.
    """

    def make_controller(self) -> KLController:
        """The controller of this loss's coefficient (every subclass says how it starts and adapts)."""
        raise NotImplementedError(f"{type(self).__name__} must define make_controller")


@dataclass(frozen=True)
class PPOKLParams(PenaltyParams):
    target_kl: float = param(
        0.01, "d_targ: per-token KL(π_old‖π_θ) the coefficient steers towards (the paper tried 0.003–0.03)", gt=0.0
    )
    init_kl_coef: float = param(1.0, "initial coefficient β_0", gt=0.0)
    factor: float = param(2.0, "β is multiplied or divided by this when the KL leaves its band", gt=1.0)
    tolerance: float = param(1.5, "band [d_targ / tolerance, d_targ · tolerance] in which β stays", gt=1.0)

    def make_controller(self) -> PPOAdaptiveKLController:
        return PPOAdaptiveKLController(self.init_kl_coef, self.target_kl, self.factor, self.tolerance)


@POLICY_LOSSES.register("ppo_kl", params=PPOKLParams, requires=("penalty_coef",))
def ppo_kl(inputs: PolicyLossInputs, params: PPOKLParams) -> PolicyLossOutput:
    """PPO with an adaptive KL penalty to π_old (Schulman et al. 1707.06347, §4):

        L_t = −r_t A_t + β · k3_t,   k3_t = r_t − 1 − log r_t,   r_t = π_θ(y_t)/π_old(y_t)
    k3 estimates KL(π_old‖π_θ) from tokens drawn from π_old without bias in value and in
    gradient (E_old[r] = 1, E_old[r ∇log π_θ] = 0), and is ≥ 0 per token. β is
    ``penalty_coef``: the learner's :class:`~.kl.PPOAdaptiveKLController` doubles it when the
    step's measured KL exceeds 1.5·d_targ and halves it below d_targ/1.5. At r = 1 the
    penalty's gradient is 0, so the gradient is REINFORCE's −A ∇log π.
    """
    assert inputs.penalty_coef is not None  # Entry.check guarantees it
    lr = log_ratio(inputs)
    ratio = torch.exp(lr)
    kl = ratio - 1.0 - lr
    loss = -inputs.advantages * ratio + inputs.penalty_coef * kl
    with torch.no_grad():
        metrics = ratio_metrics(lr.detach(), inputs.mask)
        metrics["kl_old"] = masked_mean(kl.detach(), inputs.mask)
        metrics["penalty_coef"] = torch.tensor(float(inputs.penalty_coef), dtype=torch.float64)
    return PolicyLossOutput(finish_loss(loss, inputs), metrics)


# ---------------------------------------------------------------------------- value loss


@dataclass(frozen=True)
class ValueLossInputs:
    """Critic predictions and targets.

    Attributes:
        values: V_θ(s_t), with grad. Shape: (B, T).
        old_values: values of the critic that produced the returns (detached). Shape: (B, T).
        returns: regression targets (``AdvantageOutputs.returns``). Shape: (B, T).
        mask: tokens to fit. Shape: (B, T).
    """

    values: Tensor
    old_values: Tensor
    returns: Tensor
    mask: Tensor


@dataclass(frozen=True)
class ValueLossParams(Params):
    clip_eps: float | None = param(
        0.2, "clip |V − V_old| to ε in the pessimistic term; None: plain MSE", gt=0.0
    )


def value_loss(inputs: ValueLossInputs, params: ValueLossParams) -> PolicyLossOutput:
    """Clipped value loss (PPO2 baselines; Schulman et al. 1707.06347 implementation):

        L_t = ½ max((V − R)², (V_old + clip(V − V_old, −ε, ε) − R)²)
    Without clipping L_t = ½ (V − R)². Reduce with an aggregation.
    Shape: (B, T) -> loss (B, T).
    """
    v, r = inputs.values, inputs.returns.detach()
    old = inputs.old_values.detach()
    err = (v - r) ** 2
    mask = inputs.mask.bool()
    metrics: dict[str, Tensor] = {}
    if params.clip_eps is not None:
        v_clip = old + (v - old).clamp(-params.clip_eps, params.clip_eps)
        err_clip = (v_clip - r) ** 2
        with torch.no_grad():
            metrics["vf_clip_frac"] = masked_mean((err_clip > err).to(v.dtype), mask)
        err = torch.maximum(err, err_clip)
    with torch.no_grad():
        resid = masked_mean((r - v.detach() - masked_mean(r - v.detach(), mask)) ** 2, mask)
        var_r = masked_mean((r - masked_mean(r, mask)) ** 2, mask)
        metrics["explained_variance"] = 1 - resid / var_r.clamp(min=1e-12)
    loss = torch.where(mask, 0.5 * err, 0.0)
    return PolicyLossOutput(loss, metrics)

"""Rollout/trainer mismatch and off-policy control.

The inference engine that sampled a trajectory (vLLM kernels, other precision, an older
weight version) reports log-probs ``rollout_logprobs`` that differ from the trainer's
recomputation ``old_logprobs`` of the same policy. The PPO ratio is taken against
``old_logprobs``; the transforms here correct for (truncated importance sampling) or
exclude (sequence masking) the samples whose behaviour policy differs too much.

Batch-level helpers (applied before advantages): the DAPO dynamic-sampling filter and
overlong reward shaping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .masked import masked_mean, masked_sum
from .policy_losses import LOSS_TRANSFORMS, PolicyLossInputs, TransformOutput
from .registry import Params, param

__all__ = [
    "OffPolicyMaskParams",
    "OverlongParams",
    "PartialTISParams",
    "TISParams",
    "dynamic_sampling_mask",
    "overlong_penalty",
]


@dataclass(frozen=True)
class TISParams(Params):
    cap: float = param(2.0, "truncation C of the importance weight min(π_old/π_rollout, C)", gt=0.0)


def _apply_weights(inputs: PolicyLossInputs, log_w: Tensor, cap: float) -> TransformOutput:
    log_w = log_w.detach()
    # exp after the min: an uncapped weight may overflow, the capped one cannot.
    w = torch.exp(log_w.clamp(max=math.log(cap)))
    w = torch.where(inputs.mask.bool(), w, 1.0)
    combined = w if inputs.is_weights is None else inputs.is_weights * w
    with torch.no_grad():
        metrics = {
            "tis_weight_mean": masked_mean(w, inputs.mask),
            "tis_capped_frac": masked_mean((log_w > math.log(cap)).to(w.dtype), inputs.mask),
        }
    return TransformOutput(inputs.replace(is_weights=combined), metrics)


@LOSS_TRANSFORMS.register("tis_token", params=TISParams, requires=("rollout_logprobs",))
def tis_token(inputs: PolicyLossInputs, params: TISParams) -> TransformOutput:
    """Token-level truncated importance sampling (Yao et al. 2025, "Your efficient RL
    framework secretly brings you off-policy RL training"; Ionides 2008 for TIS):

        w_t = min(π_old(y_t) / π_rollout(y_t), C),  detached, multiplied into the loss.
    Corrects the gradient for tokens sampled by the inference engine's distribution.
    """
    assert inputs.rollout_logprobs is not None
    log_w = inputs.old_logprobs - inputs.rollout_logprobs
    return _apply_weights(inputs, log_w, params.cap)


@LOSS_TRANSFORMS.register("tis_sequence", params=TISParams, requires=("rollout_logprobs",))
def tis_sequence(inputs: PolicyLossInputs, params: TISParams) -> TransformOutput:
    """Sequence-level truncated importance sampling:

        w_i = min(Π_t π_old(y_t) / π_rollout(y_t), C)   for every token of sequence i.
    Unbiased for sequence-level objectives before truncation, higher variance than
    token-level TIS; the product runs over policy tokens only.
    """
    assert inputs.rollout_logprobs is not None
    seq = masked_sum(inputs.old_logprobs - inputs.rollout_logprobs, inputs.mask, dim=-1)
    return _apply_weights(inputs, seq[:, None].expand_as(inputs.old_logprobs), params.cap)


@dataclass(frozen=True)
class PartialTISParams(Params):
    cap: float = param(2.0, "truncation C of the per-token weight min(π_old/π_v(t), C)", gt=0.0)
    max_lag: int | None = param(
        None, "K: tokens sampled more than K versions before π_old leave the loss (null: none do)", ge=0
    )


@LOSS_TRANSFORMS.register("tis_partial", params=PartialTISParams, requires=("rollout_logprobs", "rollout_lags"))
def tis_partial(inputs: PolicyLossInputs, params: PartialTISParams) -> TransformOutput:
    """Per-segment importance correction of partial rollouts (Kimi k1.5, 2501.12599 §2.6.2:
    a long completion is generated over several iterations, each segment by the weights of
    its iteration, and segments may be excluded from the loss):

        w_t = min(π_old(y_t) / π_{v(t)}(y_t), C) · 1[V − v(t) ≤ K]
    where v(t) is the version that sampled token t (Turn.segments; ``rollout_logprobs`` holds
    log π_{v(t)}(y_t), each segment's own) and V that of π_old (lag ``rollout_lags`` = V − v(t)).
    The behaviour policy changes inside a sequence, so the weight is per token, never one
    version per sequence; tokens more than K versions old are masked out of the loss (they
    count in no mean) instead of being down-weighted to nothing.
    """
    assert inputs.rollout_logprobs is not None and inputs.rollout_lags is not None
    mask = inputs.mask.bool()
    lags = inputs.rollout_lags
    stale = mask & (lags > params.max_lag) if params.max_lag is not None else torch.zeros_like(mask)
    weighted = _apply_weights(inputs, inputs.old_logprobs - inputs.rollout_logprobs, params.cap)
    with torch.no_grad():
        metrics = weighted.metrics | {
            "rollout_lag_mean": masked_mean(lags.to(inputs.old_logprobs.dtype), inputs.mask),
            "rollout_lag_max": torch.where(mask, lags, torch.zeros_like(lags)).max().to(inputs.old_logprobs.dtype),
            "stale_token_frac": masked_mean(stale.to(inputs.old_logprobs.dtype), inputs.mask),
        }
    return TransformOutput(weighted.inputs.replace(mask=mask & ~stale), metrics)


@dataclass(frozen=True)
class OffPolicyMaskParams(Params):
    max_drift: float = param(
        0.1, "bound δ on the mean per-token log-ratio log π_behaviour − log π_θ of a sequence", ge=0.0
    )


@LOSS_TRANSFORMS.register("offpolicy_sequence_mask", params=OffPolicyMaskParams)
def offpolicy_sequence_mask(inputs: PolicyLossInputs, params: OffPolicyMaskParams) -> TransformOutput:
    """Off-policy sequence masking (DeepSeek-V3.2, 2512.02556):

        M_{i,t} = 0  if A_{i,t} < 0 and (1/|y_i|) Σ_t log(π_behaviour(y_t)/π_θ(y_t)) > δ,
        M_{i,t} = 1  otherwise.
    Negative samples that the current policy has already drifted far from teach little and
    destabilize training; positive samples are always kept. π_behaviour is
    ``rollout_logprobs`` when given (the sampler's own probabilities), else ``old_logprobs``.
    """
    behaviour = inputs.rollout_logprobs if inputs.rollout_logprobs is not None else inputs.old_logprobs
    with torch.no_grad():
        drift = masked_mean(behaviour - inputs.logprobs.detach(), inputs.mask, dim=-1)
        drop = (inputs.advantages < 0) & (drift > params.max_drift)[:, None]
        mask = inputs.mask.bool() & ~drop
        metrics = {
            "offpolicy_masked_frac": masked_mean(drop.to(drift.dtype), inputs.mask),
            "offpolicy_drift_mean": drift.mean(),
        }
    return TransformOutput(inputs.replace(mask=mask), metrics)


def dynamic_sampling_mask(rewards: Tensor, group_index: Tensor, atol: float = 0.0) -> Tensor:
    """DAPO's dynamic-sampling filter (Yu et al. 2503.14476, §3.2): keep a sample only if
    its group's rewards are not all equal (max − min > ``atol``).

    A group whose samples all succeed (or all fail) has zero group-relative advantage and
    only dilutes the batch; the rollout side drops it and samples more groups.
    Shape: rewards, group_index (B,) -> bool (B,).
    """
    _, inv = torch.unique(group_index, return_inverse=True)
    g = int(inv.max()) + 1 if inv.numel() else 0
    like = dict(dtype=rewards.dtype, device=rewards.device)
    hi = torch.full((g,), float("-inf"), **like).scatter_reduce(0, inv, rewards, "amax")
    lo = torch.full((g,), float("inf"), **like).scatter_reduce(0, inv, rewards, "amin")
    return (hi - lo)[inv] > atol


@dataclass(frozen=True)
class OverlongParams(Params):
    max_length: int = param(20480, "L_max: responses longer than this get the full penalty", gt=0)
    cache_length: int = param(4096, "L_cache: width of the linear penalty ramp before L_max", ge=0)
    penalty: float = param(1.0, "magnitude of the full penalty", ge=0.0)


def overlong_penalty(lengths: Tensor, params: OverlongParams) -> Tensor:
    """DAPO soft overlong punishment (Yu et al. 2503.14476, §3.4), added to the outcome reward:

        R_len(|y|) = 0                                   if |y| ≤ L_max − L_cache
                   = ((L_max − L_cache) − |y|) / L_cache if L_max − L_cache < |y| ≤ L_max
                   = −1                                  if |y| > L_max
    (times ``penalty``). Shape: lengths (B,) -> (B,), float64 unless lengths is floating.
    The one implementation: the reward service's ``length`` verifier calls it too (B = 1).
    """
    if params.cache_length > params.max_length:
        raise ValueError("cache_length must not exceed max_length")
    dtype = lengths.dtype if lengths.is_floating_point() else torch.float64
    y = lengths.to(dtype)
    start = params.max_length - params.cache_length
    ramp = (start - y) / max(params.cache_length, 1)
    out = torch.where(y <= start, torch.zeros_like(y), ramp)
    out = torch.where(y > params.max_length, torch.full_like(y, -1.0), out)
    return params.penalty * out

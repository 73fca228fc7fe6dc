"""Exploration controls: entropy-aware losses and loss transforms.

RL with verifiable rewards tends to collapse the policy's entropy early, after which the
model stops exploring (and pass@k at large k can fall below the base model's). These
controls act on the tokens that drive that collapse:

* Clip-Cov / KL-Cov (Cui et al. 2505.22617): the entropy change of a policy-gradient
  step is driven by Cov(log π, A); restrain the few tokens with the largest covariance.
* entropy-shaped advantage (Cheng et al. 2506.14758): a bounded bonus for uncertain tokens.
* forking tokens (Wang et al. 2506.01939): train on the high-entropy minority only.
* positive/negative sample reweighting (Zhu et al. 2506.01347): PSR, NSR, W-REINFORCE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .masked import masked_mean
from .metrics import ratio_metrics, token_covariance
from .policy_losses import (
    LOSS_TRANSFORMS,
    POLICY_LOSSES,
    PolicyLossInputs,
    PolicyLossOutput,
    TransformOutput,
    clipped_surrogate,
    finish_loss,
    log_ratio,
)
from .registry import Params, param

__all__ = [
    "ClipCovParams",
    "EntropyAdvantageParams",
    "ForkingTokensParams",
    "KLCovParams",
    "NSROnlyParams",
    "PSROnlyParams",
    "SignReweightParams",
    "WReinforceParams",
]


# ---------------------------------------------------------------------------- Clip-Cov / KL-Cov


@dataclass(frozen=True)
class ClipCovParams(Params):
    clip_ratio: float = param(2e-4, "fraction r of valid tokens whose gradient is detached", gt=0.0, le=1.0)
    cov_low: float = param(1.0, "candidates need covariance > ω_low")
    cov_high: float = param(5.0, "candidates need covariance < ω_high")
    clip_eps_low: float = param(0.2, "PPO lower clip range of the underlying surrogate", ge=0.0, lt=1.0)
    clip_eps_high: float = param(0.2, "PPO upper clip range of the underlying surrogate", ge=0.0)


@POLICY_LOSSES.register("clip_cov", params=ClipCovParams)
def clip_cov(inputs: PolicyLossInputs, params: ClipCovParams) -> PolicyLossOutput:
    """Clip-Cov (Cui et al. 2505.22617, §4): detach a random few high-covariance tokens.

    Cov_t = (log π_t − mean log π)(A_t − mean A) over valid tokens. Among valid tokens not
    already clipped by PPO with ω_low < Cov_t < ω_high, ⌊r·N⌋ (at least 1) are drawn
    uniformly at random (``inputs.generator``) and their loss is zeroed, i.e. their
    gradient detached; every other token has the PPO clipped surrogate loss.
    """
    lr = log_ratio(inputs)
    mask = inputs.mask.bool()
    loss, metrics = clipped_surrogate(
        lr, inputs.advantages, inputs.mask, params.clip_eps_low, params.clip_eps_high
    )
    with torch.no_grad():
        ratio = torch.exp(lr)
        unclipped = -inputs.advantages * ratio
        already_clipped = loss > unclipped
        cov = token_covariance(inputs.logprobs, inputs.advantages, inputs.mask)
        candidates = mask & ~already_clipped & (cov > params.cov_low) & (cov < params.cov_high)
        idx = candidates.reshape(-1).nonzero().squeeze(-1)
        n_detach = min(max(int(params.clip_ratio * int(mask.sum())), 1), idx.numel())
        # randperm must run on the generator's device (CPU by default).
        gen_device = inputs.generator.device if inputs.generator is not None else "cpu"
        perm = torch.randperm(idx.numel(), generator=inputs.generator, device=gen_device)
        perm = perm[:n_detach].to(idx.device)
        keep = torch.ones(mask.numel(), dtype=torch.bool, device=mask.device)
        keep[idx[perm]] = False
        keep = keep.reshape(mask.shape)
        metrics.update(ratio_metrics(lr.detach(), inputs.mask))
        metrics["cov_detach_frac"] = masked_mean((~keep).to(ratio.dtype), inputs.mask)
    loss = torch.where(keep, loss, 0.0)
    return PolicyLossOutput(finish_loss(loss, inputs), metrics)


@dataclass(frozen=True)
class KLCovParams(Params):
    kl_ratio: float = param(
        2e-3, "fraction k of valid tokens (largest covariance) given the KL penalty", gt=0.0, le=1.0
    )
    kl_coef: float = param(1.0, "coefficient β of |log π_θ − log π_old| on the selected tokens", ge=0.0)


@POLICY_LOSSES.register("kl_cov", params=KLCovParams)
def kl_cov(inputs: PolicyLossInputs, params: KLCovParams) -> PolicyLossOutput:
    """KL-Cov (Cui et al. 2505.22617, §4): KL penalty on the top-k covariance tokens.

    L_t = −A_t r_t + β |log π_θ(y_t) − log π_old(y_t)|   for the ⌊k·N⌋ (≥ 1) valid tokens
          −A_t r_t                                    otherwise (no ratio clipping),
    with tokens ranked by Cov_t = (log π_t − mean log π)(A_t − mean A).
    """
    lr = log_ratio(inputs)
    mask = inputs.mask.bool()
    loss = -inputs.advantages * torch.exp(lr)
    with torch.no_grad():
        cov = token_covariance(inputs.logprobs, inputs.advantages, inputs.mask)
        valid = mask.reshape(-1).nonzero().squeeze(-1)
        k = min(max(int(params.kl_ratio * valid.numel()), 1), valid.numel())
        top = valid[torch.topk(cov.reshape(-1)[valid], k).indices]
        selected = torch.zeros(mask.numel(), dtype=torch.bool, device=mask.device)
        selected[top] = True
        selected = selected.reshape(mask.shape)
    loss = torch.where(selected, loss + params.kl_coef * lr.abs(), loss)
    with torch.no_grad():
        metrics = ratio_metrics(lr.detach(), inputs.mask)
        metrics["cov_kl_frac"] = masked_mean(selected.to(loss.dtype), inputs.mask)
    return PolicyLossOutput(finish_loss(loss, inputs), metrics)


# ---------------------------------------------------------------------------- transforms


@dataclass(frozen=True)
class EntropyAdvantageParams(Params):
    alpha: float = param(0.4, "scale α of the detached entropy bonus", ge=0.0)
    kappa: float = param(2.0, "the bonus is capped at |A|/κ so it never flips the sign of A", gt=1.0)


@LOSS_TRANSFORMS.register("entropy_advantage", params=EntropyAdvantageParams, requires=("entropy",))
def entropy_advantage(inputs: PolicyLossInputs, params: EntropyAdvantageParams) -> TransformOutput:
    """Entropy-shaped advantage (Cheng et al. 2506.14758):

        A'_t = A_t + min(α · sg(H_t), |A_t| / κ)
    The bonus is detached (it changes the weight, not the objective's gradient form) and
    capped by |A|/κ with κ > 1, so a negative advantage stays negative and a zero one stays 0.
    """
    assert inputs.entropy is not None
    adv = inputs.advantages
    bonus = torch.minimum(params.alpha * inputs.entropy.detach(), adv.abs() / params.kappa)
    bonus = torch.where(inputs.mask.bool(), bonus, 0.0)
    with torch.no_grad():
        capped = (params.alpha * inputs.entropy > adv.abs() / params.kappa).to(adv.dtype)
        metrics = {
            "entropy_bonus_mean": masked_mean(bonus, inputs.mask),
            "entropy_bonus_capped_frac": masked_mean(capped, inputs.mask),
        }
    return TransformOutput(inputs.replace(advantages=(adv + bonus).detach()), metrics)


@dataclass(frozen=True)
class ForkingTokensParams(Params):
    top_fraction: float = param(
        0.2, "fraction ρ of valid tokens, highest entropy first, that keep their gradient", gt=0.0, le=1.0
    )


@LOSS_TRANSFORMS.register("forking_tokens", params=ForkingTokensParams, requires=("entropy",))
def forking_tokens(inputs: PolicyLossInputs, params: ForkingTokensParams) -> TransformOutput:
    """High-entropy "forking token" mask (Wang et al. 2506.01939).

    Keep the ⌈ρ·N⌉ valid tokens of the batch with the largest entropy (the decision points
    of a reasoning trace) and mask out the rest. Statistics are over the tokens passed in:
    call it on the whole mini-batch, not per micro-batch, to match the paper.
    """
    assert inputs.entropy is not None
    mask = inputs.mask.bool()
    with torch.no_grad():
        valid = mask.reshape(-1).nonzero().squeeze(-1)
        k = min(math.ceil(params.top_fraction * valid.numel()), valid.numel())
        top = valid[torch.topk(inputs.entropy.detach().reshape(-1)[valid], k).indices]
        keep = torch.zeros(mask.numel(), dtype=torch.bool, device=mask.device)
        keep[top] = True
        keep = keep.reshape(mask.shape)
        frac = keep.sum().to(inputs.logprobs.dtype) / max(valid.numel(), 1)
    return TransformOutput(inputs.replace(mask=keep), {"forking_kept_frac": frac})


@dataclass(frozen=True)
class SignReweightParams(Params):
    positive_weight: float = param(1.0, "multiplier λ+ of positive advantages", ge=0.0)
    negative_weight: float = param(1.0, "multiplier λ− of negative advantages", ge=0.0)


@dataclass(frozen=True)
class PSROnlyParams(SignReweightParams):
    negative_weight: float = param(0.0, "multiplier λ− of negative advantages", ge=0.0)


@dataclass(frozen=True)
class NSROnlyParams(SignReweightParams):
    positive_weight: float = param(0.0, "multiplier λ+ of positive advantages", ge=0.0)


@dataclass(frozen=True)
class WReinforceParams(SignReweightParams):
    positive_weight: float = param(0.1, "multiplier λ+ of positive advantages", ge=0.0)


@LOSS_TRANSFORMS.register("w_reinforce", params=WReinforceParams)
@LOSS_TRANSFORMS.register("nsr_only", params=NSROnlyParams)
@LOSS_TRANSFORMS.register("psr_only", params=PSROnlyParams)
def sign_reweight(inputs: PolicyLossInputs, params: SignReweightParams) -> TransformOutput:
    """Positive/negative sample reweighting (Zhu et al. 2506.01347):

        A'_t = λ+ A_t if A_t > 0,   λ− A_t if A_t < 0.
    PSR-only (λ− = 0) learns from correct samples only and sharpens (pass@1 up, pass@k
    at large k down); NSR-only (λ+ = 0) only pushes probability away from wrong samples
    and preserves diversity; W-REINFORCE (λ+ = 0.1, λ− = 1) is the paper's recommended
    mix. The paper pairs these with the ``reinforce`` estimator on rewards ±1 and ``pg``.
    """
    adv = inputs.advantages
    scaled = torch.where(adv > 0, params.positive_weight * adv, params.negative_weight * adv)
    with torch.no_grad():
        metrics = {
            "positive_frac": masked_mean((adv > 0).to(adv.dtype), inputs.mask),
            "negative_frac": masked_mean((adv < 0).to(adv.dtype), inputs.mask),
        }
    return TransformOutput(inputs.replace(advantages=scaled), metrics)

"""KL(π_θ ‖ π_ref) estimators, where the KL penalty is placed, and KL coefficient controllers.

Estimators (Schulman, "Approximating KL divergence", 2020) from a token y ~ π with
log-ratio ℓ = log π_θ(y) − log π_ref(y) and ρ = π_ref(y)/π_θ(y) = e^{−ℓ}:

    k1 = ℓ                 unbiased, high variance, can be negative
    k2 = ½ ℓ²              biased (≈ KL to 2nd order), low variance; E_π[∇k2] = ∇KL
    k3 = ρ − 1 − log ρ     unbiased, non-negative, low variance
    k3_is = (π_θ/π_s) k3   k3 for tokens drawn from a sampling policy π_s (π_old), with the
                           weight kept in the graph: E_{π_s}[·] = KL exactly as a function
                           of θ, so its gradient is the true KL gradient (DeepSeek-V3.2).

As a loss, k1's expected gradient is E_π[∇log π] = 0 and k3's is ∇KL(π_ref‖π_θ) (the
reverse direction); use k2 or k3_is when the gradient matters (``placement = loss``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal, Protocol

import torch
from torch import Tensor

from outrider.config.names import KLControllerName, KLEstimatorName  # generated (make catalog)

from .registry import Params, Registry, lookup, param

__all__ = [
    "KL_CONTROLLERS",
    "KL_ESTIMATORS",
    "KL_PLACEMENTS",
    "AdaptiveKLController",
    "AdaptiveKLParams",
    "FixedKLController",
    "FixedKLParams",
    "KLController",
    "KLControllerName",
    "KLEstimatorName",
    "KLInputs",
    "KLParams",
    "KLPlacement",
    "KLPlacementName",
    "PPOAdaptiveKLController",
    "get_kl_placement",
    "kl_loss_term",
    "kl_reward_penalty",
]

KLPlacementName = Literal["reward", "loss", "none"]


@dataclass(frozen=True)
class KLInputs:
    """Attributes:
    logprobs: log π_θ(y_t) (with grad when the KL is a loss). Shape: (B, T).
    ref_logprobs: log π_ref(y_t) of the frozen reference policy. Shape: (B, T).
    sampling_logprobs: log π_s(y_t) of the policy that drew y (π_old); used by k3_is,
        which treats the tokens as on-policy (π_s = sg(π_θ)) when None. Shape: (B, T).
    """

    logprobs: Tensor
    ref_logprobs: Tensor
    sampling_logprobs: Tensor | None = None

    def __post_init__(self) -> None:
        for name in ("ref_logprobs", "sampling_logprobs"):
            x = getattr(self, name)
            if x is not None and x.shape != self.logprobs.shape:
                raise ValueError(f"{name} must have shape {tuple(self.logprobs.shape)}, got {tuple(x.shape)}")


@dataclass(frozen=True)
class KLParams(Params):
    clip: float | None = param(
        None, "clamp each per-token estimate to [−clip, clip]; None: no clamp (unbiased)", gt=0.0
    )


KLFn = Callable[[KLInputs, KLParams], Tensor]
KL_ESTIMATORS: Registry[KLFn] = Registry("KL estimator")


def _clip(kl: Tensor, params: KLParams) -> Tensor:
    return kl if params.clip is None else kl.clamp(-params.clip, params.clip)


@KL_ESTIMATORS.register("k1", params=KLParams)
def k1(inputs: KLInputs, params: KLParams) -> Tensor:
    """k1 = log π_θ − log π_ref. Shape: (B, T)."""
    return _clip(inputs.logprobs - inputs.ref_logprobs, params)


@KL_ESTIMATORS.register("k2", params=KLParams)
def k2(inputs: KLInputs, params: KLParams) -> Tensor:
    """k2 = ½ (log π_θ − log π_ref)². Shape: (B, T)."""
    return _clip(0.5 * (inputs.logprobs - inputs.ref_logprobs) ** 2, params)


def _k3(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    log_rho = ref_logprobs - logprobs
    # expm1(x) − x is exactly ρ − 1 − log ρ and keeps precision for ρ ≈ 1.
    return torch.expm1(log_rho) - log_rho


@KL_ESTIMATORS.register("k3", params=KLParams)
def k3(inputs: KLInputs, params: KLParams) -> Tensor:
    """k3 = π_ref/π_θ − 1 − log(π_ref/π_θ) ≥ 0. Shape: (B, T)."""
    return _clip(_k3(inputs.logprobs, inputs.ref_logprobs), params)


@KL_ESTIMATORS.register("k3_is", params=KLParams)
def k3_is(inputs: KLInputs, params: KLParams) -> Tensor:
    """Importance-corrected k3 for tokens drawn from π_s (DeepSeek-V3.2, 2512.02556):

        k3_is = (π_θ/π_s) · k3,  the weight differentiable in θ, π_s detached.
    E_{y~π_s}[k3_is] = Σ_y π_θ(y) k3(y) = KL(π_θ‖π_ref), both in value and in gradient.
    Shape: (B, T).
    """
    sampling = inputs.sampling_logprobs if inputs.sampling_logprobs is not None else inputs.logprobs
    weight = torch.exp(inputs.logprobs - sampling.detach())
    return _clip(weight * _k3(inputs.logprobs, inputs.ref_logprobs), params)


# ---------------------------------------------------------------------------- placement


@dataclass(frozen=True)
class KLPlacement:
    """Where the KL penalty enters: subtracted from the per-token rewards before advantage
    estimation (Ziegler et al. 1909.08593, InstructGPT), or added to the per-token loss
    (GRPO, 2402.03300). The learner calls both hooks; the placement zeroes the other.
    """

    in_reward: bool
    in_loss: bool


KL_PLACEMENTS: dict[str, KLPlacement] = {
    "reward": KLPlacement(in_reward=True, in_loss=False),
    "loss": KLPlacement(in_reward=False, in_loss=True),
    "none": KLPlacement(in_reward=False, in_loss=False),
}


def get_kl_placement(name: str) -> KLPlacement:
    """The placement called ``name``; an unknown name raises, listing the valid ones."""
    return lookup(KL_PLACEMENTS, name, "KL placement")


def kl_reward_penalty(kl: Tensor, coef: float, placement: KLPlacement) -> Tensor:
    """Per-token reward term −β·KL_t (detached) to add to ``token_rewards``; 0 unless the
    placement is ``reward``.  Shape: (B, T)."""
    return -coef * kl.detach() if placement.in_reward else torch.zeros_like(kl).detach()


def kl_loss_term(kl: Tensor, coef: float, placement: KLPlacement) -> Tensor:
    """Per-token loss term β·KL_t to add to the policy loss before aggregation; 0 unless the
    placement is ``loss``.  Shape: (B, T)."""
    return coef * kl if placement.in_loss else torch.zeros_like(kl)


# ---------------------------------------------------------------------------- controllers


class KLController(Protocol):
    value: float

    def update(self, current_kl: float, n_steps: int) -> float: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class FixedKLParams(Params):
    kl_coef: float = param(0.001, "constant KL coefficient β", ge=0.0)


class FixedKLController:
    """A constant coefficient β."""

    def __init__(self, params: FixedKLParams) -> None:
        self.value = params.kl_coef

    def update(self, current_kl: float, n_steps: int) -> float:
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])


@dataclass(frozen=True)
class AdaptiveKLParams(Params):
    init_kl_coef: float = param(0.2, "initial KL coefficient β_0", gt=0.0)
    target_kl: float = param(6.0, "KL the controller steers towards (nats per sequence as measured)", gt=0.0)
    horizon: int = param(10000, "samples over which a full ±20% correction is applied", gt=0)


class AdaptiveKLController:
    """Proportional controller of Ziegler et al. (1909.08593, §2.2):

        e = clip(KL / KL_target − 1, −0.2, 0.2),   β ← β (1 + e · n_steps / horizon)
    where ``n_steps`` is the number of samples since the last update.
    """

    def __init__(self, params: AdaptiveKLParams) -> None:
        self.value = params.init_kl_coef
        self.target = params.target_kl
        self.horizon = params.horizon

    def update(self, current_kl: float, n_steps: int) -> float:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
        if not math.isfinite(self.value):
            raise FloatingPointError(f"KL coefficient became {self.value}")
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])
        self.target = float(state["target"])
        self.horizon = int(state["horizon"])


class PPOAdaptiveKLController:
    """PPO's adaptive KL penalty coefficient (Schulman et al. 1707.06347, §4), for the
    penalty to π_old of ``ppo_kl`` (not the reference-KL controller above):

        d = measured KL(π_old‖π_θ) of the step;
        β ← β / factor   if d < d_targ / tolerance;   β ← β · factor   if d > d_targ · tolerance
    (the paper: factor 2, tolerance 1.5). ``n_steps`` is ignored: the rule is per update.
    """

    def __init__(self, init_kl_coef: float, target_kl: float, factor: float, tolerance: float) -> None:
        self.value = init_kl_coef
        self.target = target_kl
        self.factor = factor
        self.tolerance = tolerance

    def update(self, current_kl: float, n_steps: int) -> float:
        if not math.isfinite(current_kl):
            raise FloatingPointError(f"measured KL(π_old‖π_θ) is {current_kl}")
        if current_kl > self.target * self.tolerance:
            self.value *= self.factor
        elif current_kl < self.target / self.tolerance:
            self.value /= self.factor
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value, "target": self.target, "factor": self.factor, "tolerance": self.tolerance}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])
        self.target = float(state["target"])
        self.factor = float(state["factor"])
        self.tolerance = float(state["tolerance"])


def _make_fixed(params: FixedKLParams) -> FixedKLController:
    """Constant KL coefficient."""
    return FixedKLController(params)


def _make_adaptive(params: AdaptiveKLParams) -> AdaptiveKLController:
    """Adaptive KL coefficient (Ziegler et al. 1909.08593)."""
    return AdaptiveKLController(params)


# Entries are constructors: KL_CONTROLLERS.get(name).fn(params) -> KLController.
KL_CONTROLLERS: Registry[Callable[[Any], KLController]] = Registry("KL controller")
KL_CONTROLLERS.register("fixed", params=FixedKLParams)(_make_fixed)
KL_CONTROLLERS.register("adaptive", params=AdaptiveKLParams)(_make_adaptive)

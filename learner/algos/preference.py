"""Preference losses ``fn(PreferenceInputs, params) -> PreferenceLossOutput`` over pairs.

A pair is a prompt x with a chosen response y_w and a rejected one y_l. The policy losses
(DPO, IPO) read the sequence log-probabilities log π(y|x) of both responses under the
policy and under a frozen reference; the reward-model loss (Bradley–Terry) reads the
scalar scores r(x, y) of a reward model. With the log-ratio difference

    h = [log π_θ(y_w) − log π_ref(y_w)] − [log π_θ(y_l) − log π_ref(y_l)]

DPO is a logistic loss on β·h and IPO a squared loss pulling h to 1/(2τ). Each loss returns
the per-pair loss (B,), to be averaged by the caller, and detached metrics. Whether
log π(y|x) is the sum over the response tokens (the papers) or their mean is the caller's
choice of inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from outrider.config.names import PreferenceLossName  # generated (make catalog)

from .registry import NoParams, Params, Registry, param

__all__ = [
    "PREFERENCE_LOSSES",
    "DPOParams",
    "IPOParams",
    "PreferenceInputs",
    "PreferenceLossName",
    "PreferenceLossOutput",
]


@dataclass(frozen=True)
class PreferenceInputs:
    """Attributes:
    chosen: log π_θ(y_w|x) (DPO, IPO) or the reward model's score r(x, y_w)
        (Bradley–Terry), with grad. Shape: (B,).
    rejected: the same for y_l. Shape: (B,).
    ref_chosen: log π_ref(y_w|x) of the frozen reference (detached inside). Shape: (B,).
    ref_rejected: log π_ref(y_l|x). Shape: (B,).
    """

    chosen: Tensor
    rejected: Tensor
    ref_chosen: Tensor | None = None
    ref_rejected: Tensor | None = None

    def __post_init__(self) -> None:
        shape = tuple(self.chosen.shape)
        if len(shape) != 1:
            raise ValueError(f"chosen must be (B,), got {shape}")
        for name in ("rejected", "ref_chosen", "ref_rejected"):
            x = getattr(self, name)
            if x is not None and tuple(x.shape) != shape:
                raise ValueError(f"{name} must have shape {shape}, got {tuple(x.shape)}")


@dataclass(frozen=True)
class PreferenceLossOutput:
    """Per-pair loss and detached scalar metrics.  Shape: loss (B,)."""

    loss: Tensor
    metrics: dict[str, Tensor]


PreferenceFn = Callable[[PreferenceInputs, Params], PreferenceLossOutput]
PREFERENCE_LOSSES: Registry[PreferenceFn] = Registry("preference loss")


def _log_ratio_margin(inputs: PreferenceInputs) -> tuple[Tensor, Tensor, Tensor]:
    """(h, chosen log-ratio, rejected log-ratio), the reference detached."""
    assert inputs.ref_chosen is not None and inputs.ref_rejected is not None  # Entry.check
    chosen = inputs.chosen - inputs.ref_chosen.detach()
    rejected = inputs.rejected - inputs.ref_rejected.detach()
    return chosen - rejected, chosen, rejected


@dataclass(frozen=True)
class DPOParams(Params):
    beta: float = param(0.1, "inverse temperature β of the implicit reward β·log(π_θ/π_ref)", gt=0.0)
    label_smoothing: float = param(
        0.0, "ε: probability that a pair's label is flipped (conservative DPO); 0 = plain DPO", ge=0.0, lt=0.5
    )


@PREFERENCE_LOSSES.register("dpo", params=DPOParams, requires=("ref_chosen", "ref_rejected"))
def dpo(inputs: PreferenceInputs, params: DPOParams) -> PreferenceLossOutput:
    """Direct Preference Optimization (Rafailov et al. 2305.18290):

        L = −(1 − ε) log σ(β h) − ε log σ(−β h)
    with h the log-ratio difference (module doc); ε > 0 is conservative DPO (Mitchell 2023,
    labels flipped with probability ε). Its gradient pushes up y_w and down y_l, weighted by
    σ(−β h): how wrongly the implicit reward orders the pair. Shape: (B,) -> loss (B,).
    """
    h, chosen, rejected = _log_ratio_margin(inputs)
    z = params.beta * h
    loss = -(1.0 - params.label_smoothing) * F.logsigmoid(z) - params.label_smoothing * F.logsigmoid(-z)
    with torch.no_grad():
        metrics = {
            "reward_chosen": (params.beta * chosen).mean(),
            "reward_rejected": (params.beta * rejected).mean(),
            "reward_margin": z.mean(),
            "accuracy": (h > 0).to(h.dtype).mean(),
        }
    return PreferenceLossOutput(loss, metrics)


@dataclass(frozen=True)
class IPOParams(Params):
    tau: float = param(0.1, "regularisation τ: the loss pulls h to 1/(2τ)", gt=0.0)


@PREFERENCE_LOSSES.register("ipo", params=IPOParams, requires=("ref_chosen", "ref_rejected"))
def ipo(inputs: PreferenceInputs, params: IPOParams) -> PreferenceLossOutput:
    """Identity Preference Optimization (Azar et al. 2310.12036, ΨPO with Ψ = identity):

        L = (h − 1/(2τ))²
    A squared loss with a finite target: unlike DPO it does not keep pushing h to ∞ on
    pairs that are already ordered (deterministic preferences), so the KL regularisation
    to π_ref stays effective. Shape: (B,) -> loss (B,).
    """
    h, _, _ = _log_ratio_margin(inputs)
    loss = (h - 1.0 / (2.0 * params.tau)) ** 2
    with torch.no_grad():
        metrics = {"margin": h.mean(), "accuracy": (h > 0).to(h.dtype).mean()}
    return PreferenceLossOutput(loss, metrics)


@PREFERENCE_LOSSES.register("bradley_terry", params=NoParams)
def bradley_terry(inputs: PreferenceInputs, params: NoParams) -> PreferenceLossOutput:
    """Bradley–Terry reward-model loss (Bradley & Terry 1952; Ouyang et al. 2203.02155):

        L = −log σ(r_w − r_l),   P(y_w ≻ y_l) = σ(r_w − r_l)
    on the reward model's scalar scores ``chosen`` = r(x, y_w), ``rejected`` = r(x, y_l).
    Shape: (B,) -> loss (B,).
    """
    margin = inputs.chosen - inputs.rejected
    loss = -F.logsigmoid(margin)
    with torch.no_grad():
        metrics = {"margin": margin.mean(), "accuracy": (margin > 0).to(margin.dtype).mean()}
    return PreferenceLossOutput(loss, metrics)

"""Loss aggregation ``fn(AggregationInputs, params) -> scalar``: how a per-token loss
matrix becomes the number that is differentiated.

The choice weights tokens differently (Yu et al. 2503.14476; Liu et al. 2503.20783):

    token_mean               Σ_{i,t} L m / Σ_{i,t} m              every token counts the same (DAPO)
    seq_mean_token_mean      (1/B) Σ_i Σ_t L m / |y_i|             every sequence counts the same (GRPO)
    seq_mean_token_sum       (1/B) Σ_i Σ_t L m                     long sequences count more
    seq_mean_token_sum_norm  (1/(B·L)) Σ_i Σ_t L m, L a constant   no length bias (Dr. GRPO)

Micro-batching: pass the counts of the whole mini-batch (all micro-batches, all data-
parallel ranks) as ``num_tokens``/``num_sequences``; the sum over micro-batches of the
aggregated losses then equals the loss of the mini-batch computed at once. With
DeepSpeed, whose gradients are averaged over ranks, multiply by the world size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import Tensor

from outrider.config.names import LossAggregationName as AggregationName  # generated (make catalog)

from .masked import masked_sum
from .registry import NoParams, Params, Registry, param

__all__ = [
    "AGGREGATIONS",
    "AggregationInputs",
    "AggregationName",
    "TokenSumNormParams",
]


@dataclass(frozen=True)
class AggregationInputs:
    """Attributes:
    loss: per-token loss. Shape: (B, T).
    mask: tokens that count. Shape: (B, T).
    num_tokens: denominator for ``token_mean`` (global count of masked tokens); None:
        the count in this batch.
    num_sequences: denominator for the ``seq_mean_*`` modes (global count of sequences
        with at least one token); None: the count in this batch.
    max_length: the length L that ``seq_mean_token_sum_norm`` divides by when its
        ``norm_length`` is None: the padded length of the whole mini-batch, so that
        micro-batches padded to their own lengths agree; None: T of this batch.
    """

    loss: Tensor
    mask: Tensor
    num_tokens: float | None = None
    num_sequences: float | None = None
    max_length: float | None = None

    def __post_init__(self) -> None:
        if self.loss.shape != self.mask.shape or self.loss.dim() != 2:
            raise ValueError(
                "loss and mask must both be (B, T), "
                f"got {tuple(self.loss.shape)} and {tuple(self.mask.shape)}"
            )


AggregationFn = Callable[[AggregationInputs, Params], Tensor]
AGGREGATIONS: Registry[AggregationFn] = Registry("loss aggregation")


def _num_sequences(inputs: AggregationInputs) -> Tensor | float:
    if inputs.num_sequences is not None:
        return inputs.num_sequences
    # A sequence without trainable tokens (all masked) neither contributes nor counts.
    return inputs.mask.bool().any(-1).sum().clamp(min=1).to(inputs.loss.dtype)


@AGGREGATIONS.register("token_mean", params=NoParams)
def token_mean(inputs: AggregationInputs, params: NoParams) -> Tensor:
    """Σ_{i,t} L_{i,t} m_{i,t} / N_tokens (DAPO, 2503.14476)."""
    n = inputs.num_tokens
    if n is None:
        n = inputs.mask.to(inputs.loss.dtype).sum().clamp(min=1.0)
    return masked_sum(inputs.loss, inputs.mask) / n


@AGGREGATIONS.register("seq_mean_token_mean", params=NoParams)
def seq_mean_token_mean(inputs: AggregationInputs, params: NoParams) -> Tensor:
    """(1/N_seq) Σ_i (Σ_t L_{i,t} m_{i,t} / |y_i|) (GRPO, 2402.03300)."""
    lengths = inputs.mask.to(inputs.loss.dtype).sum(-1).clamp(min=1.0)
    per_seq = masked_sum(inputs.loss, inputs.mask, dim=-1) / lengths
    return per_seq.sum() / _num_sequences(inputs)


@AGGREGATIONS.register("seq_mean_token_sum", params=NoParams)
def seq_mean_token_sum(inputs: AggregationInputs, params: NoParams) -> Tensor:
    """(1/N_seq) Σ_i Σ_t L_{i,t} m_{i,t}."""
    return masked_sum(inputs.loss, inputs.mask) / _num_sequences(inputs)


@dataclass(frozen=True)
class TokenSumNormParams(Params):
    norm_length: int | None = param(
        None,
        "constant L dividing each sequence's token sum (e.g. the max response length); None: T of the batch",
        gt=0,
    )


@AGGREGATIONS.register("seq_mean_token_sum_norm", params=TokenSumNormParams)
def seq_mean_token_sum_norm(inputs: AggregationInputs, params: TokenSumNormParams) -> Tensor:
    """(1/(N_seq · L)) Σ_i Σ_t L_{i,t} m_{i,t} with a constant L (Dr. GRPO, 2503.20783).

    Keep L fixed across steps (set ``norm_length`` to the generation budget): with
    L = T of the padded batch the scale changes with the longest sample.
    """
    length = params.norm_length
    if length is None:
        length = inputs.max_length if inputs.max_length is not None else inputs.loss.shape[-1]
    return masked_sum(inputs.loss, inputs.mask) / (_num_sequences(inputs) * length)

"""Masked reductions and per-group statistics (after torchtune ``rlhf/utils``).

A mask is a 0/1 tensor (bool or float) that selects the entries that count; 0-entries
never influence a result, whatever their value (they are zeroed with ``torch.where``,
not multiplied, so a NaN or inf at a masked entry cannot leak).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "group_count",
    "group_mean",
    "group_std",
    "group_sum",
    "group_uniform",
    "last_token_index",
    "masked_mean",
    "masked_sum",
    "masked_var",
    "masked_whiten",
]


def _select(x: Tensor, mask: Tensor) -> Tensor:
    return torch.where(mask.bool(), x, 0.0)


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Σ x·m over ``dim`` (all entries when None).

    Shape: x, mask (..., T) broadcastable -> reduced over ``dim``.
    """
    x = _select(x, mask)
    return x.sum() if dim is None else x.sum(dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Σ x·m / Σ m; 0 where Σ m = 0 (an empty selection contributes nothing, never NaN).

    Shape: x, mask (..., T) -> reduced over ``dim``.
    """
    m = mask.to(x.dtype).expand_as(x)
    count = m.sum() if dim is None else m.sum(dim)
    return masked_sum(x, mask, dim) / count.clamp(min=1.0)


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of the selected entries (all dims); Bessel-corrected when ``unbiased``.

    var = Σ m (x − μ)² / (Σ m − 1)   (unbiased)   or   / Σ m   (biased).
    Shape: x, mask (...) -> scalar.
    """
    mean = masked_mean(x, mask)
    sq = masked_sum((x - mean) ** 2, mask)
    n = mask.to(x.dtype).expand_as(x).sum()
    denom = n - 1 if unbiased else n
    return sq / denom.clamp(min=1.0)


def masked_whiten(
    x: Tensor, mask: Tensor, shift_mean: bool = True, unbiased: bool = True, eps: float = 1e-8
) -> Tensor:
    """(x − μ)/sqrt(σ² + eps) with μ, σ² over the selected entries; masked entries -> 0.

    With ``shift_mean=False`` the mean is added back: x' = (x − μ)/σ + μ.
    Shape: x, mask (...) -> same as x.
    """
    mean = masked_mean(x, mask)
    var = masked_var(x, mask, unbiased=unbiased)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return _select(out, mask)


def _compact(group_index: Tensor) -> tuple[Tensor, int]:
    # Group ids may be arbitrary (task ids, hashes); map them to 0..G-1.
    uniq, inverse = torch.unique(group_index, return_inverse=True)
    return inverse, int(uniq.numel())


def group_sum(x: Tensor, group_index: Tensor) -> Tensor:
    """For each sample, the sum of ``x`` over its group.  Shape: x, group_index (B,) -> (B,)."""
    inv, g = _compact(group_index)
    sums = torch.zeros(g, dtype=x.dtype, device=x.device).index_add_(0, inv, x)
    return sums[inv]


def group_count(group_index: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    """For each sample, the size of its group.  Shape: (B,) -> (B,)."""
    return group_sum(torch.ones(group_index.shape, dtype=dtype, device=group_index.device), group_index)


def group_mean(x: Tensor, group_index: Tensor) -> Tensor:
    """For each sample, the mean of ``x`` over its group.  Shape: (B,) -> (B,)."""
    return group_sum(x, group_index) / group_count(group_index, x.dtype)


def group_std(x: Tensor, group_index: Tensor, unbiased: bool = True) -> Tensor:
    """For each sample, the standard deviation of ``x`` over its group.

    Unbiased (Bessel) by default, as ``torch.std``; a group of one has std 0.
    Shape: (B,) -> (B,).
    """
    n = group_count(group_index, x.dtype)
    centered = x - group_mean(x, group_index)
    ss = group_sum(centered**2, group_index)
    denom = (n - 1).clamp(min=1.0) if unbiased else n
    return torch.sqrt(ss / denom)


def group_uniform(x: Tensor, group_index: Tensor, rtol: float = 1e-6) -> Tensor:
    """For each sample, whether its group's values are all equal within a relative ``rtol``:

        max_g x − min_g x ≤ rtol · max_g |x|

    Such a group carries no learning signal for a group-relative estimator. It has to be
    detected, not left to arithmetic: rewards like 2/3 or 0.7 are not binary fractions,
    so the mean of eight equal float32 copies can be off by an ulp, the std is then
    ~1e-8 (far below any eps), and (s − mean)/(std + eps) turns rounding noise into
    advantages of ±0.1. An all-zero group is uniform (0 ≤ 0).
    Shape: x, group_index (B,) -> bool (B,).
    """
    inv, g = _compact(group_index)
    hi = torch.full((g,), float("-inf"), dtype=x.dtype, device=x.device).scatter_reduce(0, inv, x, "amax")
    lo = torch.full((g,), float("inf"), dtype=x.dtype, device=x.device).scatter_reduce(0, inv, x, "amin")
    scale = torch.maximum(hi.abs(), lo.abs())
    return ((hi - lo) <= rtol * scale)[inv]


def last_token_index(mask: Tensor) -> Tensor:
    """Index of the last 1 in each row of ``mask`` (0 for an all-zero row).

    Shape: mask (B, T) -> (B,) long.
    """
    t = mask.shape[-1]
    pos = torch.arange(t, device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), pos, torch.full_like(pos, -1)).amax(-1).clamp(min=0)

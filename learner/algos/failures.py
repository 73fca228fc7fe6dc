"""Infra-failure-aware group statistics: an episode the infrastructure cut short leaves its group.

An episode that ended because the infrastructure failed (the sandbox or environment raised,
the env or reward service was unreachable, the policy timed out) says nothing about the
policy: its reward is not a measurement. Scored as 0 it would drag its group's baseline
down and credit every other sample with an advantage it did not earn; dropping the whole
group would waste the valid samples. Instead it is excluded:

* from its group's statistics: the advantages of the other n − f samples are exactly
  those of a group of those n − f samples (:func:`estimate_on_rows` runs the estimator,
  and any reward shaping, on the kept rows only, so every estimator of the registry obeys
  it, group-relative or batch-whitened alike);
* from the loss: its advantage is 0 and the learner gives its rows no loss weight;
* a group that lost samples and is left with fewer than ``min_valid`` valid ones is
  dropped whole (:func:`enough_valid`), and counted. A group without failures is never
  dropped, whatever its size (one sample per prompt is a valid design for REINFORCE++).

A caveat the rule cannot remove: if failures correlate with what the policy does (long
episodes meet more sandbox errors), the surviving samples are a biased subset. That is why
failures are counted per step: a failure rate that is not small is a bug to fix, not noise.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, TypeVar

import torch
from torch import Tensor

from .advantages import AdvantageInputs, AdvantageOutputs
from .masked import group_sum

__all__ = ["enough_valid", "estimate_on_rows", "select_rows", "shape_on_rows", "trainable_rows"]

InputsT = TypeVar("InputsT")


def enough_valid(valid: Tensor, group_index: Tensor, min_valid: int) -> Tensor:
    """For each sample, whether its group is kept: it has no failed sample, or at least
    ``min_valid`` valid ones remain.

    Shape: valid (B,) bool, group_index (B,) -> (B,) bool.
    """
    valid = valid.bool()
    counts = group_sum(valid.to(torch.float64), group_index)
    failures = group_sum((~valid).to(torch.float64), group_index)
    return (failures == 0) | (counts >= min_valid)


def trainable_rows(valid: Tensor, group_index: Tensor, min_valid: int) -> Tensor:
    """Valid samples of the groups :func:`enough_valid` keeps.

    Shape: (B,) bool, (B,) -> (B,) bool.
    """
    return valid.bool() & enough_valid(valid.bool(), group_index, min_valid)


def select_rows(inputs: InputsT, rows: Tensor) -> InputsT:
    """A copy of a dataclass of per-sample tensors with every tensor field indexed by
    ``rows`` along its first dimension (non-tensor fields, None fields unchanged)."""
    changes = {
        f.name: getattr(inputs, f.name)[rows]
        for f in dataclasses.fields(inputs)
        if isinstance(getattr(inputs, f.name), Tensor)
    }
    return dataclasses.replace(inputs, **changes)


def estimate_on_rows(
    estimate: Callable[[AdvantageInputs], AdvantageOutputs], inputs: AdvantageInputs, keep: Tensor
) -> AdvantageOutputs:
    """``estimate`` over the rows where ``keep`` is true, as if the others did not exist;
    the other rows get advantage and return 0.

    Shape: inputs (B, ·), keep (B,) bool -> AdvantageOutputs (B, T).
    """
    keep = keep.bool()
    if bool(keep.all()):
        return estimate(inputs)
    rows = keep.nonzero().squeeze(-1)
    shape = tuple(inputs.mask.shape)
    if rows.numel() == 0:
        zeros = torch.zeros(shape, dtype=inputs.rewards.dtype, device=inputs.rewards.device)
        return AdvantageOutputs(zeros, zeros.clone())
    out = estimate(select_rows(inputs, rows))
    advantages = out.advantages.new_zeros(shape)
    returns = out.returns.new_zeros(shape)
    advantages[rows] = out.advantages
    returns[rows] = out.returns
    return AdvantageOutputs(advantages, returns)


def shape_on_rows(shape: Callable[[InputsT], Tensor], inputs: InputsT, keep: Tensor) -> Tensor:
    """``shape(inputs)`` (new per-sample rewards) over the kept rows only; the other rows
    keep ``inputs.rewards``. Shape: keep (B,) bool -> (B,)."""
    keep = keep.bool()
    if bool(keep.all()):
        return shape(inputs)
    rewards = inputs.rewards.clone()  # type: ignore[attr-defined]
    rows = keep.nonzero().squeeze(-1)
    if rows.numel():
        rewards[rows] = shape(select_rows(inputs, rows)).to(rewards.dtype)
    return rewards

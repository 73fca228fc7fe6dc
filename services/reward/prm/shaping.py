"""Step scores s_t -> step rewards r_t.

* difference: r_t = s_t − s_{t−1} with s_0 := 0. Potential-based shaping (Ng,
  Harada & Russell 1999) with potential s: Σ_t r_t = s_T telescopes, so the
  return depends only on the final score while each step is credited with the
  progress it made (Setlur et al. 2024, "Rewarding Progress").
* min: r_t = 0 for t < T, r_T = min_t s_t — the weakest step decides (the
  min-form credit assignment of Cheng et al. 2025, PURE), which resists a
  policy padding a trajectory with easy high-scoring steps.
* last: r_t = 0 for t < T, r_T = s_T.
* raw: r_t = s_t.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

ShapingName = Literal["difference", "min", "last", "raw"]
SHAPINGS: tuple[str, ...] = ("difference", "min", "last", "raw")


def shape(scores: np.ndarray, shaping: ShapingName) -> np.ndarray:
    """Step rewards from step scores. Shape: (T,) -> (T,), float64; T may be 0."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {s.shape}")
    if shaping == "raw":
        return s.copy()
    if shaping == "difference":
        return np.diff(s, prepend=0.0)
    rewards = np.zeros_like(s)
    if s.size == 0:
        return rewards
    if shaping == "min":
        rewards[-1] = s.min()
    elif shaping == "last":
        rewards[-1] = s[-1]
    else:
        raise ValueError(f"unknown shaping {shaping!r}; valid: {', '.join(SHAPINGS)}")
    return rewards

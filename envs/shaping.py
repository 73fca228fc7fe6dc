"""Step scores s_1..s_T -> step rewards r_1..r_T: the one implementation of the rule.

* difference: r_t = s_t − s_{t−1} with s_0 := 0. Potential-based shaping (Ng,
  Harada & Russell 1999) with potential s: Σ_t r_t = s_T telescopes, so the
  return depends only on the final score while each step is credited with the
  progress it made (Setlur et al. 2024, "Rewarding Progress").
* min: r_t = 0 for t < T, r_T = min_t s_t — the weakest step decides (the
  min-form credit assignment of Cheng et al. 2025, PURE), which resists a
  policy padding a trajectory with easy high-scoring steps.
* last: r_t = 0 for t < T, r_T = s_T.
* raw: r_t = s_t.

Its users: the rollout shapes an environment's process signals (`steps: env`),
the reward service shapes its PRM's scores (ScoreSteps). It is plain Python over
floats and lives in `outrider.envs`, the domain layer, because both users sit
above it and the rollout workers do not load torch. The learner's
`outrider.learner.algos.process_rewards.step_rewards_from_scores` is the same
`difference` rule in the token layout (B, T) of a batch; a test holds the two equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

ShapingName = Literal["difference", "min", "last", "raw"]
SHAPINGS: tuple[str, ...] = ("difference", "min", "last", "raw")


def step_rewards(scores: Sequence[float], shaping: ShapingName) -> list[float]:
    """r_t from s_t by `shaping` (see the module doc); T may be 0."""
    s = [float(score) for score in scores]
    if shaping == "raw":
        return s
    if shaping == "difference":
        return [score - previous for previous, score in zip([0.0, *s], s)]
    if shaping not in SHAPINGS:
        raise ValueError(f"unknown shaping {shaping!r}; valid: {', '.join(SHAPINGS)}")
    if not s:
        return []
    return [0.0] * (len(s) - 1) + [min(s) if shaping == "min" else s[-1]]

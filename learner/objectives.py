"""The step's reward components: per-step means, Lagrangian constraints and their multipliers.

Trajectories scored by the reward service carry their reward's named parts
(Trajectory.reward_components). For every step the learner

* logs the mean of each component over the valid trajectories that carry it
  (`reward/<name>`), and
* for each constraint component c (RewardComponent.constraint set) replaces the
  outcome reward by R = r_main − λ_c·max(0, g_c) before the advantages, then moves λ_c
  by projected dual ascent on this step's mean violation (formulas in
  `outrider.learner.algos.reward_objectives`). The λ_c that shaped the step's reward is
  the one from before its update, and the updated one is saved in LearnerState.multipliers.

With `algorithm.kl.disagreement_gain` > 0 the step's mean `prm_disagreement` (a PRM
ensemble's) scales the KL coefficient (`DisagreementKL`, a heuristic; docs/reward.md).

A trajectory without a component (an infrastructure failure, an episode stopped for
repeating itself whose reward replaced the verifiers') is left out of its mean and
gets no penalty.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from outrider.config.learner import ConstraintsConfig
from outrider.config.reward import PRM_DISAGREEMENT
from outrider.learner.algos import masked_mean
from outrider.learner.algos.reward_objectives import constraint_violations, disagreement_kl_scale, dual_ascent, lagrangian_reward
from outrider.proto.v1.trajectory_pb2 import TrajectoryGroup


@dataclass(frozen=True)
class ComponentTable:
    """Every component of the step's trajectories, one column per name (batch row order)."""

    names: list[str]
    values: Tensor
    """Shape: (B, C) float64; 0 where absent."""
    present: Tensor
    """Shape: (B, C) bool; the trajectory carries the component."""
    constraint: Tensor
    """Shape: (B, C) bool; ...as a constraint."""
    thresholds: Tensor
    """Shape: (B, C) float64; ε of the constraint (0 elsewhere)."""
    at_least: Tensor
    """Shape: (B, C) bool; the constraint is value ≥ ε."""


def component_table(groups: list[TrajectoryGroup]) -> ComponentTable | None:
    """The components of `groups` in build_batch's row order; None when no trajectory has any."""
    rows = [traj for group in groups for traj in group.trajectories]
    names = sorted({c.name for traj in rows for c in traj.reward_components})
    if not names:
        return None
    column = {name: i for i, name in enumerate(names)}
    shape = (len(rows), len(names))
    values, thresholds = torch.zeros(shape, dtype=torch.float64), torch.zeros(shape, dtype=torch.float64)
    present, constraint, at_least = (torch.zeros(shape, dtype=torch.bool) for _ in range(3))
    for row, traj in enumerate(rows):
        for c in traj.reward_components:
            j = column[c.name]
            values[row, j], present[row, j] = c.value, True
            if c.HasField("constraint"):
                constraint[row, j] = True
                thresholds[row, j], at_least[row, j] = c.constraint.threshold, c.constraint.at_least
    return ComponentTable(names, values, present, constraint, thresholds, at_least)


class ConstraintMultipliers:
    """λ per constraint name, with state_dict/load_state_dict (kept in LearnerState)."""

    def __init__(self, cfg: ConstraintsConfig):
        self.cfg = cfg
        self.values: dict[str, float] = {}

    def state_dict(self) -> dict[str, float]:
        return dict(self.values)

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.values = {name: float(value) for name, value in state.items()}

    def step(self, table: ComponentTable, rewards: Tensor, valid: Tensor) -> tuple[Tensor, dict[str, float]]:
        """(B,) rewards with the constraints' penalties, and the step's component metrics;
        updates λ of every constraint some valid trajectory carries."""
        counted = table.present & valid[:, None]
        means = masked_mean(table.values, counted, dim=0)
        metrics = {f"reward/{name}": float(means[j]) for j, name in enumerate(table.names) if counted[:, j].any()}
        is_constraint = table.constraint.any(0)
        if not bool(is_constraint.any()):
            return rewards, metrics
        cols = [j for j in range(len(table.names)) if is_constraint[j]]
        names = [table.names[j] for j in cols]
        lambdas = torch.tensor([self.values.get(name, self.cfg.initial) for name in names], dtype=torch.float64)
        violations = constraint_violations(table.values[:, cols], table.thresholds[:, cols], table.at_least[:, cols])
        carried = table.constraint[:, cols] & table.present[:, cols]
        shaped = lagrangian_reward(rewards.double(), violations, lambdas, carried).to(rewards.dtype)
        measured = carried & valid[:, None]
        mean_violation = masked_mean(violations, measured, dim=0)
        updated = dual_ascent(lambdas, mean_violation, self.cfg.lr, self.cfg.max_multiplier)
        for j, name in enumerate(names):
            metrics[f"constraint/{name}/lambda"] = float(lambdas[j])
            if not measured[:, j].any():
                continue  # nothing measured: λ stays
            metrics[f"constraint/{name}/violation"] = float(mean_violation[j])
            metrics[f"constraint/{name}/violated_fraction"] = float(masked_mean((violations[:, j] > 0).double(), measured[:, j]))
            self.values[name] = float(updated[j])
        return shaped, metrics


class DisagreementKL:
    """The KL heuristic: scale = 1 + gain·max(0, d/d₀ − 1), d₀ the first positive mean
    disagreement measured (checkpointed as LearnerState.disagreement_baseline)."""

    def __init__(self, gain: float):
        self.gain = gain
        self.baseline: float | None = None

    def scale(self, component_metrics: dict[str, float]) -> float:
        """The factor for this step's KL coefficient (1 when off or nothing is measured)."""
        disagreement = component_metrics.get(f"reward/{PRM_DISAGREEMENT}")
        if self.gain == 0 or disagreement is None:
            return 1.0
        if self.baseline is None:
            if disagreement > 0:
                self.baseline = disagreement
            return 1.0
        return disagreement_kl_scale(disagreement, self.baseline, self.gain)

"""Structural checks of a TrajectoryGroup before anyone trains on it.

A group that fails here is dead-lettered with the returned reason; the
learner never sees it. The checks are the alignment rules of trajectory.proto.
"""

from __future__ import annotations

import math

import numpy as np

from outrider.proto.v1.common_pb2 import ItemStatus
from outrider.proto.v1.trajectory_pb2 import TrajectoryGroup


def group_problem(group: TrajectoryGroup) -> str | None:
    """Return why `group` cannot be trained on, or None if it is well formed."""
    if not group.group_id:
        return "group_id is empty"
    if not group.trajectories:
        return f"group {group.group_id}: no trajectories"
    for index, traj in enumerate(group.trajectories):
        problem = _trajectory_problem(traj)
        if problem:
            return f"group {group.group_id}: trajectories[{index}]: {problem}"
    return None


def _trajectory_problem(traj) -> str | None:
    length = len(traj.token_ids)
    if length == 0:
        return "token_ids is empty"
    if len(traj.logprobs) != length:
        return f"len(logprobs)={len(traj.logprobs)} != len(token_ids)={length}"
    if len(traj.loss_mask) != length:
        return f"len(loss_mask)={len(traj.loss_mask)} != len(token_ids)={length}"
    if traj.prompt_length > length:
        return f"prompt_length={traj.prompt_length} > len(token_ids)={length}"
    if any(traj.loss_mask[: traj.prompt_length]):
        return "loss_mask is true inside the prompt"
    if not math.isfinite(traj.outcome_reward):
        return f"outcome_reward is {traj.outcome_reward}"
    if not np.isfinite(np.asarray(traj.logprobs, dtype=np.float32)).all():
        return "logprobs contain a non-finite value"
    for step in traj.step_rewards:
        if not (math.isfinite(step.reward) and math.isfinite(step.score)):
            return f"step reward at token {step.token_index} is not finite"
        if step.token_index >= length:
            return f"step reward token_index={step.token_index} >= len(token_ids)={length}"
    for turn_index, turn in enumerate(traj.turns):
        end = turn.start + turn.completion_length + turn.observation_length
        if end > length:
            return f"turns[{turn_index}] ends at {end} > len(token_ids)={length}"
        if turn.HasField("sampling"):
            support = turn.sampling
            if not (support.temperature > 0 and support.top_k >= 0 and 0 < support.top_p <= 1):
                return (
                    f"turns[{turn_index}].sampling: temperature={support.temperature} must be > 0, "
                    f"top_k={support.top_k} >= 0, top_p={support.top_p} in (0, 1]"
                )
        if turn.segments:
            lengths = sum(segment.length for segment in turn.segments)
            if lengths != turn.completion_length:
                return f"turns[{turn_index}].segments: lengths sum to {lengths} != completion_length={turn.completion_length}"
            if turn.segments[0].policy_version != turn.policy_version:
                return (
                    f"turns[{turn_index}].policy_version={turn.policy_version} != its first segment's "
                    f"{turn.segments[0].policy_version}"
                )
    if traj.HasField("repetition") and traj.repetition.turn_index >= len(traj.turns):
        return f"repetition.turn_index={traj.repetition.turn_index} >= len(turns)={len(traj.turns)}"
    # An infra-failed episode travels with its error; the learner leaves it out of its group.
    if traj.status.code not in (ItemStatus.CODE_UNSPECIFIED, ItemStatus.OK) and not traj.infra_failure:
        return f"trajectory status {ItemStatus.Code.Name(traj.status.code)}: {traj.status.message}"
    return None

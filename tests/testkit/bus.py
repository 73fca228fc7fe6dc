"""Builders of trajectory groups for tests."""

from __future__ import annotations

from outrider.proto.v1.trajectory_pb2 import Trajectory, TrajectoryGroup, Turn


def make_group(group_id: str, trajectories: int = 2, tokens: int = 8, prompt: int = 3) -> TrajectoryGroup:
    """A well-formed group: `prompt` prompt tokens, then one policy turn."""
    group = TrajectoryGroup(group_id=group_id, env="test", task_id="t0", policy_version=1)
    for index in range(trajectories):
        completion = tokens - prompt
        group.trajectories.append(
            Trajectory(
                trajectory_id=f"{group_id}/{index}",
                prompt_length=prompt,
                token_ids=list(range(tokens)),
                logprobs=[0.0] * prompt + [-0.5] * completion,
                loss_mask=[False] * prompt + [True] * completion,
                turns=[Turn(start=prompt, completion_length=completion, policy_version=1)],
                outcome_reward=float(index % 2),
            )
        )
    return group

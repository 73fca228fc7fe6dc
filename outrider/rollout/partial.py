"""Partial rollouts (Kimi k1.5, 2501.12599 §2.6.2): a group parked between learner steps.

With `rollout.partial.segment_tokens` = S, every Generate call of a training rollout
samples at most S new tokens. A completion cut there while its turn's own budget is
not used up waits; once every running episode of the group waits, the worker parks the
group (PartialGroup, durable in Redis: `outrider.transport.RolloutPark`) and its task
ends. The dispatcher sends the group again, under the same group id, once the policy
serves newer weights; the worker that picks it up goes on from the stored tokens, and
each continuation is a new Segment of its turn with the version that sampled it.

    turn tokens   y_1 … y_a | y_{a+1} … y_b | … y_L
    segments      (a, v_1)  | (b − a, v_2)  | …        v_1 ≤ v_2 ≤ …

The group reaches the bus once, when every episode has ended (its id is the bus's
idempotency key, as for any group), and leaves the park after that.

Environment sessions are not kept across a park: they are closed when the group is
parked, and a resume opens new ones with the same seeds and replays the finished turns'
actions, checking that the environment answers as recorded (`GroupPlayer` does it). A
worker that dies while resuming therefore leaves nothing behind that a retry could
trip over: the retry starts again from the stored state.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from outrider.proto.v1 import common_pb2, trajectory_pb2
from outrider.proto.v1.trajectory_pb2 import INFRA_FAILURE_NONE
from outrider.rollout.episodes import Episode, trajectory_of


def to_partial(episode: Episode) -> trajectory_pb2.PartialEpisode:
    """The stored form of an episode (rewards are not assigned before the group ends)."""
    scores = episode.process_scores
    return trajectory_pb2.PartialEpisode(
        index=episode.index,
        messages=episode.messages,
        trajectory=trajectory_of(episode),
        process_scores=[0.0 if s is None else s for s in scores],
        has_process_score=[s is not None for s in scores],
        done=episode.done,
        open=episode.open,
    )


def from_partial(stored: trajectory_pb2.PartialEpisode) -> Episode:
    """The episode again, as `GroupPlayer` left it (no environment session yet)."""
    trajectory = stored.trajectory
    episode = Episode(
        index=stored.index,
        messages=list(stored.messages),
        token_ids=list(trajectory.token_ids),
        logprobs=list(trajectory.logprobs),
        loss_mask=list(trajectory.loss_mask),
        prompt_length=trajectory.prompt_length,
        turns=[_copy(turn) for turn in trajectory.turns],
        process_scores=[s if has else None for s, has in zip(stored.process_scores, stored.has_process_score, strict=True)],
        done=stored.done,
        truncated=trajectory.truncated,
        solved=trajectory.solved,
        open=stored.open,
    )
    if trajectory.infra_failure != INFRA_FAILURE_NONE:
        episode.fail(trajectory.infra_failure, trajectory.status.message)
    if trajectory.HasField("repetition"):
        episode.repetition = _copy(trajectory.repetition)
    return episode


def _copy(message):
    """A detached copy: the episode's turns grow in place, the stored message must not."""
    fresh = type(message)()
    fresh.CopyFrom(message)
    return fresh


def newest_version(episodes: list[Episode]) -> int:
    """The newest weights version that sampled any segment of any turn (0: none)."""
    versions = [0]
    for episode in episodes:
        for turn in episode.turns:
            versions += [turn.policy_version, *(s.policy_version for s in turn.segments)]
    return max(versions)


def partial_group(
    task: common_pb2.Task, group_id: str, seed: int, episodes: list[Episode], parks: int
) -> trajectory_pb2.PartialGroup:
    """What a worker parks: the task, the seed and every episode (`parks` counts this park)."""
    return trajectory_pb2.PartialGroup(
        group_id=group_id,
        task=task,
        seed=seed,
        episodes=[to_partial(e) for e in episodes],
        parks=parks,
        policy_version=newest_version(episodes),
        parked_unix=time.time(),
    )


def due(
    parked: list[trajectory_pb2.PartialGroup], served_version: int, in_play: Collection[str], limit: int
) -> list[trajectory_pb2.PartialGroup]:
    """The parked groups to resume now, at most `limit`, longest parked first: those not in
    play whose newest segment is older than the weights the policy serves. (On the same
    weights a resume would only split one Generate call in two.)"""
    ready = [g for g in parked if g.group_id not in in_play and g.policy_version < served_version]
    ready.sort(key=lambda g: (g.parked_unix, g.group_id))
    return ready[: max(limit, 0)]

"""build_group keeps infra-failed episodes flagged, with their error, instead of dropping them."""

from __future__ import annotations

from outrider.proto.v1 import common_pb2, trajectory_pb2
from outrider.proto.v1.common_pb2 import ItemStatus
from outrider.proto.v1.trajectory_pb2 import (
    INFRA_FAILURE_ENV_UNAVAILABLE,
    INFRA_FAILURE_NONE,
    INFRA_FAILURE_REWARD_ERROR,
)
from outrider.rollout.episodes import Episode, build_group


def played(index: int, reward: float = 0.0) -> Episode:
    episode = Episode(index=index, token_ids=[1, 2, 3, 4], logprobs=[0.0, 0.0, -0.5, -0.7], loss_mask=[False, False, True, True])
    episode.prompt_length = 2
    episode.turns = [trajectory_pb2.Turn(start=2, completion_length=2, policy_version=7)]
    episode.done, episode.outcome_reward = True, reward
    return episode


def test_failed_episodes_travel_flagged_and_unstarted_ones_only_as_errors():
    ok = played(0, reward=1.0)
    step_failed = played(1)
    step_failed.fail(INFRA_FAILURE_ENV_UNAVAILABLE, "Step: UNAVAILABLE: env down")
    never_started = Episode(index=2)
    never_started.fail(INFRA_FAILURE_ENV_UNAVAILABLE, "CreateSession: UNAVAILABLE: env down")
    unscored = played(3)
    unscored.fail(INFRA_FAILURE_REWARD_ERROR, "reward ERROR: verifier raised")
    unscored.fail(INFRA_FAILURE_ENV_UNAVAILABLE, "a later error does not replace the first")

    result = build_group(common_pb2.Task(id="t", env="math"), "g", [ok, step_failed, never_started, unscored])

    trajectories = result.group.trajectories
    assert [t.trajectory_id for t in trajectories] == ["g/0", "g/1", "g/3"]
    assert [t.infra_failure for t in trajectories] == [INFRA_FAILURE_NONE, INFRA_FAILURE_ENV_UNAVAILABLE, INFRA_FAILURE_REWARD_ERROR]
    assert trajectories[0].status.code == ItemStatus.OK and trajectories[0].outcome_reward == 1.0
    assert (trajectories[1].status.code, trajectories[1].status.message, trajectories[1].status.source) == (
        ItemStatus.ERROR, "Step: UNAVAILABLE: env down", "env_unavailable",
    )
    assert trajectories[2].status.message == "reward ERROR: verifier raised" and trajectories[2].status.source == "reward_error"
    # Tokens are kept as sampled up to the failure.
    assert list(trajectories[1].token_ids) == [1, 2, 3, 4] and list(trajectories[1].loss_mask) == [False, False, True, True]
    assert len(result.errors) == 3 and result.group.policy_version == 7

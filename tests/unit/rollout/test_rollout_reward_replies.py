"""A reward-service reply without a status, or OK without a reward, fails the episode
(INFRA_FAILURE_REWARD_ERROR): nothing is scored as 0.

The replies come from a stand-in for a broken reward service (ours always states each
item's status; the rule is for a peer that does not), handed to `assign_rewards`
where the real RewardClient would be.
"""

from __future__ import annotations

from outrider.config.rollout import RewardSourceConfig
from outrider.proto.v1 import common_pb2, reward_pb2, trajectory_pb2
from outrider.proto.v1.common_pb2 import ItemStatus
from outrider.proto.v1.trajectory_pb2 import INFRA_FAILURE_NONE, INFRA_FAILURE_REWARD_ERROR
from outrider.rollout.episodes import Episode
from outrider.rollout.rewards import assign_rewards


class BrokenRewardService:
    def __init__(self, results):
        self.results = results

    def score(self, items):
        assert len(items) == len(self.results)
        return self.results


def _episode(index: int) -> Episode:
    episode = Episode(index=index, token_ids=[1, 2, 3], logprobs=[0.0, -0.1, -0.2], loss_mask=[False, True, True])
    episode.turns = [trajectory_pb2.Turn(start=1, completion_length=2, policy_version=1)]
    episode.messages = [common_pb2.ChatMessage(role="assistant", content="Answer: 4")]
    episode.done = True
    return episode


def test_unset_status_and_missing_reward_fail_the_episode_and_ok_with_reward_scores():
    episodes = [_episode(i) for i in range(3)]
    results = [
        reward_pb2.ScoreResult(id="0", reward=0.75, status=common_pb2.ItemStatus(code=ItemStatus.OK)),
        reward_pb2.ScoreResult(id="1", reward=1.0),  # no status at all
        reward_pb2.ScoreResult(id="2", status=common_pb2.ItemStatus(code=ItemStatus.OK)),  # OK, no reward
    ]
    cfg = RewardSourceConfig(outcome="reward-service", turn_penalty=0.0)
    assign_rewards(common_pb2.Task(id="t", env="math"), episodes, cfg, BrokenRewardService(results))
    assert (episodes[0].failure, episodes[0].outcome_reward) == (INFRA_FAILURE_NONE, 0.75)
    assert episodes[1].failure == INFRA_FAILURE_REWARD_ERROR and "CODE_UNSPECIFIED" in episodes[1].error
    assert episodes[2].failure == INFRA_FAILURE_REWARD_ERROR

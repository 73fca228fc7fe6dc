"""Malformed groups never reach training: dead-lettered with a reason; the learner goes on."""

from __future__ import annotations

import pytest
import redis

from outrider.config import BusConfig
from outrider.transport import RedisReceiver, RedisSender
from testkit.learner import checkpoint_state, finish, learn_process, learnable_groups, write_run_config

pytestmark = pytest.mark.slow


def test_bad_and_stale_groups_are_dead_lettered_and_good_ones_trained(any_redis_url, bus_prefix, tmp_path):
    first = learnable_groups(2, prefix="v0")  # sampled by version 0, trained at version 0
    second = learnable_groups(2, version=1, prefix="v1")  # sampled by version 1, trained at version 1
    stale = learnable_groups(1, prefix="old")[0]  # version 0, arriving when the learner is at 1
    mismatched, nan_reward, empty = learnable_groups(3, prefix="bad")
    del mismatched.trajectories[0].logprobs[-1]
    nan_reward.trajectories[1].outcome_reward = float("nan")
    del empty.trajectories[:]
    client = redis.Redis.from_url(any_redis_url)
    cfg = BusConfig(prefix=bus_prefix)
    audit = RedisReceiver(client, cfg, name="audit")
    sender = RedisSender(client, cfg)
    for group in (first[0], mismatched, first[1], nan_reward, empty, stale, second[0], second[1]):
        sender.send(group)

    run_dir = tmp_path / "run"
    learner = {"max_steps": 2, "max_policy_lag": 0}
    finish(learn_process(write_run_config(tmp_path / "run.yaml", run_dir, any_redis_url, bus_prefix, learner)))

    assert checkpoint_state(run_dir)["trained_group_ids"] == [g.group_id for g in first + second]
    reasons = dict(audit.dead_letters())
    assert "trajectories[0]: len(logprobs)=12 != len(token_ids)=13" in reasons["bad-0000"]
    assert "trajectories[1]: outcome_reward is nan" in reasons["bad-0001"]
    assert "no trajectories" in reasons["bad-0002"]
    assert reasons["old-0000"] == "stale: sampled by version 0, learner at 1, max_policy_lag 0"
    stats = audit.stats()
    assert (stats.dead_lettered, stats.committed, stats.queued) == (4, 4, 0)

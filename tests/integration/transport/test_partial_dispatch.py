"""The dispatcher resumes parked groups (partial rollouts) before new tasks, on newer weights
only, under their own id and seed (real Redis; Celery tasks are queued, no worker runs)."""

from __future__ import annotations

import base64
import uuid

import pytest
import redis

from outrider.config import BusConfig, RunConfig
from outrider.proto.v1.common_pb2 import Task
from outrider.proto.v1.trajectory_pb2 import PartialGroup
from outrider.train.driver import Dispatcher
from outrider.transport import RedisReceiver, RolloutPark


@pytest.fixture
def setup(redis_url, bus_prefix, tmp_path):
    client = redis.Redis.from_url(redis_url)
    cfg = BusConfig(prefix=bus_prefix)
    run = RunConfig.model_validate(
        {
            "name": f"partial-{uuid.uuid4().hex[:8]}",
            "redis": {"url": redis_url},
            "bus": cfg.model_dump(),
            "learner": {"groups_per_step": 3, "max_policy_lag": 2},
            "rollout": {"dispatch": "on_demand", "partial": {"segment_tokens": 8}},
        }
    )
    served = {"version": 2}
    # No curriculum: each tick below wants no more groups than are due.
    dispatcher = Dispatcher(run, curriculum=None, run_dir=tmp_path, served_version=lambda: served["version"])
    learner = RedisReceiver(client, cfg, name="learner")
    park = RolloutPark(client, cfg)
    yield dispatcher, learner, park, served
    dispatcher.cancel()
    learner.delete()


def _parked(gid: str, version: int, when: float, seed: int) -> PartialGroup:
    return PartialGroup(group_id=gid, task=Task(id=f"task-{gid}", env="math"), seed=seed, policy_version=version, parked_unix=when)


def test_parked_groups_resume_first_on_newer_weights_under_their_id_and_seed(setup):
    dispatcher, learner, park, served = setup
    for group in (_parked("g-a", 1, 10.0, 5), _parked("g-b", 2, 5.0, 9)):
        assert park.park(group, limit=3)
    learner.announce_demand(1, held=0)
    dispatcher.tick()
    # Served version 2: g-b was sampled by it already; g-a (version 1) goes, with its seed.
    assert list(dispatcher.pending) == ["g-a"] and dispatcher.stats.resumed == 1
    task_b64, gid, seed = dispatcher.args["g-a"]
    assert (Task.FromString(base64.b64decode(task_b64)).id, gid, seed) == ("task-g-a", "g-a", 5)

    served["version"] = 3
    learner.announce_demand(2, held=0)
    dispatcher.tick()
    # g-a is in play (not sent twice); g-b is due now and fills the one group still wanted.
    assert sorted(dispatcher.pending) == ["g-a", "g-b"] and dispatcher.stats.resumed == 2
    assert dispatcher.args["g-b"][1:] == ["g-b", 9]

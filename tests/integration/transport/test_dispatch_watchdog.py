"""The dispatcher's watchdog on a hand-driven clock (real Redis and Celery queue; no worker
runs, so the groups in play never finish unless the test moves something on the bus)."""

from __future__ import annotations

import uuid

import pytest
import redis

from outrider.config import BusConfig, RunConfig
from outrider.proto.v1.common_pb2 import Task
from outrider.train.driver import Dispatcher, DispatchStalled
from outrider.transport import RedisReceiver, RedisSender
from testkit.learner import learnable_groups


class Tasks:
    """A curriculum that has `count` tasks in all."""

    def __init__(self, count: int):
        self.left = count

    def next_tasks(self, wanted: int, include_reference: bool = False) -> list[Task]:
        given = min(wanted, self.left)
        self.left -= given
        return [Task(id=f"t{i}", env="math") for i in range(given)]


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def make(redis_url, bus_prefix, tmp_path):
    made = []

    def build(tasks: int):
        cfg = BusConfig(prefix=bus_prefix)
        run = RunConfig.model_validate({
            "name": f"stall-{uuid.uuid4().hex[:8]}",
            "redis": {"url": redis_url},
            "bus": cfg.model_dump(),
            "rollout": {"dispatch": "ahead", "max_groups_ahead": 2, "task_time_limit_s": 10, "dispatcher_stall_s": 60},
        })
        clock = Clock()
        dispatcher = Dispatcher(run, Tasks(tasks), tmp_path, clock=clock)
        made.append(dispatcher)
        return dispatcher, clock, RedisSender(redis.Redis.from_url(redis_url), cfg)

    yield build
    for dispatcher in made:
        dispatcher.cancel()
    RedisReceiver(redis.Redis.from_url(redis_url), BusConfig(prefix=bus_prefix), name="cleanup").delete()


def test_nothing_moving_resends_the_groups_in_play_then_stops_the_run(make, caplog):
    dispatcher, clock, sender = make(tasks=2)
    dispatcher.tick()                                   # t = 0: two groups in play
    first = {gid: result.id for gid, result in dispatcher.pending.items()}
    assert len(first) == 2
    clock.now = 60.0                                    # silent 60 s: at the limit
    dispatcher.tick()
    assert dispatcher.stalls == 0
    clock.now = 61.0                                    # 61 s > 60: the first stall
    dispatcher.tick()
    assert dispatcher.stalls == 1
    assert "dispatcher: no progress for 61 s (last: 2 groups in play, 0 on the bus, 0 committed)" in caplog.text
    # Sent again under the same group ids, as new Celery tasks.
    assert sorted(dispatcher.pending) == sorted(first)
    assert all(dispatcher.pending[gid].id != task_id for gid, task_id in first.items())

    clock.now = 110.0                                   # something moves: a group reaches the bus
    sender.send(learnable_groups(1, prefix="moved")[0])
    dispatcher.tick()
    assert dispatcher.stalls == 0                       # progress forgives the stall
    clock.now = 171.0                                   # 61 s after that: a first stall again, not the end
    dispatcher.tick()
    assert dispatcher.stalls == 1
    clock.now = 231.0                                   # rearmed at 171: 60 s, at the limit
    dispatcher.tick()
    clock.now = 232.0                                   # two stall limits with nothing moving
    with pytest.raises(DispatchStalled) as caught:
        dispatcher.tick()
    assert str(caught.value) == (
        "dispatcher: no progress for 61 s (last: 2 groups in play, 1 on the bus, 0 committed); stall limit 60 s; "
        "sending the groups in play again did not help"
    )


def test_nothing_in_play_is_not_a_stall(make):
    dispatcher, clock, _ = make(tasks=0)                # no tasks: the learner (say) is busy elsewhere
    dispatcher.tick()
    clock.now = 10_000.0
    dispatcher.tick()
    assert dispatcher.stalls == 0 and not dispatcher.pending

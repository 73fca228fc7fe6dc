"""The park of partial rollouts on a real Redis: bounded, updatable, never resumes a sent group."""

from __future__ import annotations

import pytest
import redis

from outrider.config import BusConfig
from outrider.proto.v1.trajectory_pb2 import PartialEpisode, PartialGroup
from outrider.transport import BusError, RedisSender, RolloutPark
from testkit.bus import make_group


@pytest.fixture
def park(redis_url, bus_prefix):
    client = redis.Redis.from_url(redis_url)
    cfg = BusConfig(prefix=bus_prefix)
    sender = RedisSender(client, cfg)
    yield client, RolloutPark(client, cfg), sender
    sender.delete()


def _group(gid: str, parks: int = 1) -> PartialGroup:
    return PartialGroup(group_id=gid, seed=5, parks=parks, episodes=[PartialEpisode(index=0, open=True)])


def test_at_most_limit_groups_wait_but_a_parked_one_can_always_be_updated(park):
    _, store, _ = park
    assert store.park(_group("g1"), limit=2) and store.park(_group("g2"), limit=2)
    assert not store.park(_group("g3"), limit=2), "the park is full"
    # A resumed group parked once more replaces its entry, full park or not.
    assert store.park(_group("g1", parks=2), limit=2)
    assert sorted(g.group_id for g in store.parked()) == ["g1", "g2"]
    assert store.load("g1").parks == 2 and store.load("g1").episodes[0].open
    store.remove("g1")
    assert store.load("g1") is None
    assert store.park(_group("g3"), limit=2)


def test_a_group_already_on_the_bus_is_neither_parked_nor_resumed(park):
    _, store, sender = park
    assert store.park(_group("g1"), limit=4)
    # The worker sent it and died before unparking it.
    assert sender.send(make_group("g1"))
    assert store.load("g1") is None
    assert store.parked() == [] and not store.park(_group("g1"), limit=4)


def test_a_corrupt_entry_is_an_error_naming_it(park):
    client, store, _ = park
    client.hset(store.keys.partial, "g9", b"\xff\xff not protobuf")
    with pytest.raises(BusError, match=r"partial\['g9'\]"):
        store.load("g9")

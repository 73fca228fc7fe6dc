"""The trajectory bus against a real Redis: the CI machine's and the embedded one."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from testkit.bus import make_group
from outrider.config import BusConfig
from outrider.transport import BusTimeout, RedisReceiver, RedisSender


@pytest.fixture
def bus(redis_url, bus_prefix):
    client = redis.Redis.from_url(redis_url)
    cfg = BusConfig(prefix=bus_prefix, block_ms=50, claim_idle_ms=200)
    yield client, cfg
    RedisSender(client, cfg).delete()
    client.close()


def test_groups_arrive_once_in_order_and_commit_deletes_them(bus):
    client, cfg = bus
    sender, receiver = RedisSender(client, cfg), RedisReceiver(client, cfg, name="c1")
    for index in range(5):
        assert sender.send(make_group(f"g{index}")) is True
    deliveries = receiver.receive(10)
    assert [d.group.group_id for d in deliveries] == ["g0", "g1", "g2", "g3", "g4"]
    assert deliveries[0].group == make_group("g0")
    assert receiver.receive(10, block_s=0.05) == []
    result = receiver.commit(deliveries)
    assert result.committed == ["g0", "g1", "g2", "g3", "g4"] and result.duplicates == []
    stats = receiver.stats()
    assert (stats.produced, stats.committed, stats.queued, stats.pending) == (5, 5, 0, 0)


def test_a_resent_group_id_is_not_delivered_twice(bus):
    client, cfg = bus
    sender, receiver = RedisSender(client, cfg), RedisReceiver(client, cfg, name="c1")
    assert sender.send(make_group("same")) is True
    assert sender.send(make_group("same")) is False
    receiver.commit(receiver.receive(10))
    # Even after the first copy was committed and deleted, the id stays known.
    assert sender.send(make_group("same")) is False
    assert receiver.receive(10, block_s=0.05) == []
    assert receiver.stats().duplicates_dropped == 2


def test_producer_waits_while_the_bus_is_full_and_never_trims(bus):
    client, cfg = bus
    cfg = cfg.model_copy(update={"max_len": 3})
    sender, receiver = RedisSender(client, cfg), RedisReceiver(client, cfg, name="c1")
    for index in range(3):
        sender.send(make_group(f"g{index}"))
    fourth_sent = threading.Event()
    threading.Thread(target=lambda: (sender.send(make_group("g3")), fourth_sent.set()), daemon=True).start()
    assert not fourth_sent.wait(0.5), "send must block while 3 groups are uncommitted"
    delivered = receiver.receive(3)
    assert not fourth_sent.wait(0.3), "delivered but uncommitted groups still count against max_len"
    receiver.commit(delivered[:1])
    assert fourth_sent.wait(5), "one commit frees one slot"
    ids = [d.group.group_id for d in delivered[1:]] + [d.group.group_id for d in receiver.receive(10)]
    receiver.commit(delivered[1:])
    assert sorted(ids) == ["g1", "g2", "g3"]


def test_send_timeout_when_full(bus):
    client, cfg = bus
    cfg = cfg.model_copy(update={"max_len": 1, "send_timeout_s": 0.3})
    sender = RedisSender(client, cfg)
    sender.send(make_group("g0"))
    started = time.monotonic()
    with pytest.raises(BusTimeout, match="bus full"):
        sender.send(make_group("g1"))
    assert time.monotonic() - started >= 0.25


def test_malformed_entries_go_to_dead_letter_with_reason_and_consumer_continues(bus):
    client, cfg = bus
    sender, receiver = RedisSender(client, cfg), RedisReceiver(client, cfg, name="c1")
    sender.send(make_group("before"))
    client.xadd(f"{cfg.prefix}:stream", {"gid": "junk", "data": b"\x08\xff\xff\xff\xff"})
    broken = make_group("short-logprobs")
    del broken.trajectories[1].logprobs[-1]
    sender.send(broken)
    nan_reward = make_group("nan")
    nan_reward.trajectories[0].outcome_reward = float("nan")
    sender.send(nan_reward)
    empty = make_group("empty", trajectories=0)
    sender.send(empty)
    sender.send(make_group("after"))

    deliveries = receiver.receive(10)
    assert [d.group.group_id for d in deliveries] == ["before", "after"]
    reasons = dict(receiver.dead_letters())
    assert "malformed protobuf" in reasons["junk"]
    assert "trajectories[1]: len(logprobs)=7 != len(token_ids)=8" in reasons["short-logprobs"]
    assert "outcome_reward is nan" in reasons["nan"]
    assert "no trajectories" in reasons["empty"]
    assert receiver.stats().dead_lettered == 4
    receiver.commit(deliveries)
    assert receiver.stats().queued == 0


def test_rejected_delivery_is_dead_lettered(bus):
    client, cfg = bus
    sender, receiver = RedisSender(client, cfg), RedisReceiver(client, cfg, name="c1")
    sender.send(make_group("g0"))
    (delivery,) = receiver.receive(1)
    receiver.reject(delivery, "learner: reward scale out of range")
    assert receiver.dead_letters() == [("g0", "learner: reward scale out of range")]
    assert receiver.stats().queued == 0


def test_silent_consumers_groups_are_reclaimed_by_a_live_one(bus):
    client, cfg = bus
    sender = RedisSender(client, cfg)
    dead, live = RedisReceiver(client, cfg, name="dead"), RedisReceiver(client, cfg, name="live")
    for index in range(4):
        sender.send(make_group(f"g{index}"))
    taken = dead.receive(3)
    assert len(taken) == 3
    first = live.receive(10, block_s=0.05)
    assert [d.group.group_id for d in first] == ["g3"]
    time.sleep(cfg.claim_idle_ms / 1000 + 0.1)
    reclaimed = live.receive(10, block_s=0.05)
    assert sorted(d.group.group_id for d in reclaimed) == ["g0", "g1", "g2"]
    assert all(d.redelivered for d in reclaimed)
    live.commit(first + reclaimed)
    stats = live.stats()
    assert (stats.committed, stats.reclaimed, stats.commit_duplicates, stats.queued) == (4, 3, 0, 0)


def test_lease_extension_keeps_groups_from_being_reclaimed(bus):
    client, cfg = bus
    sender = RedisSender(client, cfg)
    slow, other = RedisReceiver(client, cfg, name="slow"), RedisReceiver(client, cfg, name="other")
    sender.send(make_group("g0"))
    held = slow.receive(1)
    for _ in range(3):
        time.sleep(cfg.claim_idle_ms / 1000 * 0.6)
        slow.extend_lease(held)
    assert other.receive(10, block_s=0.05) == []
    assert slow.commit(held).committed == ["g0"]


def test_restarted_consumer_gets_its_own_unfinished_groups_back_at_once(bus):
    client, cfg = bus
    cfg = cfg.model_copy(update={"claim_idle_ms": 600_000})
    sender = RedisSender(client, cfg)
    for index in range(3):
        sender.send(make_group(f"g{index}"))
    first_life = RedisReceiver(client, cfg, name="learner-0")
    assert len(first_life.receive(2)) == 2
    second_life = RedisReceiver(client, cfg, name="learner-0")
    again = second_life.receive(10)
    assert [d.group.group_id for d in again] == ["g0", "g1", "g2"]
    assert [d.redelivered for d in again] == [True, True, False]


def test_a_group_that_keeps_killing_consumers_is_dead_lettered(bus):
    client, cfg = bus
    cfg = cfg.model_copy(update={"max_deliveries": 2, "claim_idle_ms": 100})
    RedisSender(client, cfg).send(make_group("poison"))
    deliveries_seen = 0
    for life in range(4):
        got = RedisReceiver(client, cfg, name=f"c{life}").receive(1, block_s=0.05)
        deliveries_seen += len(got)
        time.sleep(0.15)
    assert deliveries_seen == 2
    assert RedisReceiver(client, cfg, name="x").dead_letters() == [("poison", "delivered 3 times without a commit")]


def test_commit_by_group_id_finds_groups_delivered_or_not(bus):
    client, cfg = bus
    sender, receiver = RedisSender(client, cfg), RedisReceiver(client, cfg, name="c1")
    for index in range(4):
        sender.send(make_group(f"g{index}"))
    delivered = receiver.receive(2)
    assert [d.group.group_id for d in delivered] == ["g0", "g1"]
    # g1 was delivered (pending), g2 never was; "gone" does not exist.
    result = receiver.commit_group_ids(["g1", "g2", "gone"])
    assert sorted(result.committed) == ["g1", "g2"] and result.duplicates == []
    assert [d.group.group_id for d in receiver.receive(10, block_s=0.05)] == ["g3"]
    stats = receiver.stats()
    assert (stats.committed, stats.queued) == (2, 2)  # g0 and g3 remain uncommitted


def test_queued_ids_are_the_uncommitted_groups_across_scan_pages(bus):
    client, cfg = bus
    cfg = cfg.model_copy(update={"max_len": 2000})  # room for every group at once
    sender, receiver = RedisSender(client, cfg), RedisReceiver(client, cfg, name="c1")
    # 1,203 groups: the scan reads 500 entries per XRANGE, so three pages (500, 500, 203).
    ids = [f"g{index:04d}" for index in range(1203)]
    for gid in ids:
        sender.send(make_group(gid, trajectories=1, tokens=4, prompt=1))
    delivered = receiver.receive(3)
    receiver.commit(delivered[:2])  # g0000, g0001 leave the stream; g0002 stays (pending)
    assert receiver.queued_ids() == set(ids[2:])
    assert len(receiver.queued_ids()) == receiver.stats().queued == 1201
    # The same scan finds the groups to commit by id, on any page.
    result = receiver.commit_group_ids(["g0002", "g0700", "g1202"])
    assert sorted(result.committed) == ["g0002", "g0700", "g1202"]
    assert receiver.queued_ids() == set(ids[2:]) - {"g0002", "g0700", "g1202"}

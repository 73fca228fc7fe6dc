"""The consumer's demand on the bus, and on-demand dispatch reading it (real Redis).

On one machine the learner and the rollouts share the cores, so `rollout.dispatch:
on_demand` produces only what the learner waits for. The bus derives the demand from
its own pending count — demand = groups − (pending − held) — so a delivery lowers it
at once, before the learner says anything again; these tests walk a learner's step
by hand and check every number against that formula.
"""

from __future__ import annotations

import pytest
import redis

from outrider.config import BusConfig, RunConfig
from outrider.train.driver import Dispatcher, dispatch_mode, ledger
from outrider.transport import RedisReceiver, RedisSender
from testkit.bus import make_group


@pytest.fixture
def bus(redis_url, bus_prefix):
    client = redis.Redis.from_url(redis_url)
    cfg = BusConfig(prefix=bus_prefix)
    learner = RedisReceiver(client, cfg, name="learner")
    yield client, cfg, RedisSender(client, cfg), learner
    learner.delete()


def test_demand_is_none_until_announced_then_falls_with_each_delivery(bus):
    client, cfg, sender, learner = bus
    assert learner.stats().demand is None
    learner.announce_demand(3, held=0)
    assert learner.stats().demand == 3
    for gid in ("g1", "g2"):
        sender.send(make_group(gid))
    # Sent but not delivered: the learner still waits for 3.
    assert learner.stats().demand == 3
    taken = learner.receive(3, block_s=0.1)
    assert [d.group.group_id for d in taken] == ["g1", "g2"]
    # Two delivered (pending 2, held 0): 3 − (2 − 0) = 1, without a new announcement.
    assert learner.stats().demand == 1
    learner.announce_demand(0, held=2)
    assert learner.stats().demand == 0


def test_held_groups_of_earlier_steps_do_not_count_as_deliveries_of_this_step(bus):
    _, _, sender, learner = bus
    for gid in ("a1", "a2"):
        sender.send(make_group(gid))
    held = learner.receive(2, block_s=0.1)  # trained, not yet committed (checkpoint_every > 1)
    learner.announce_demand(2, held=len(held))
    assert learner.stats().demand == 2  # 2 − (2 − 2)
    sender.send(make_group("b1"))
    learner.receive(2, block_s=0.1)
    assert learner.stats().demand == 1  # 2 − (3 − 2)
    # Committing the held groups after the step's demand went to 0 cannot raise it again.
    learner.announce_demand(0, held=3)
    learner.commit(held)
    assert learner.stats().demand == 0


def test_next_steps_demand_announced_before_the_commit_survives_it(bus):
    # The learner publishes its weights, announces the next step at once (its 2 trained
    # groups still held), then checkpoints and commits them while new groups arrive.
    _, _, sender, learner = bus
    for gid in ("a1", "a2"):
        sender.send(make_group(gid))
    trained = learner.receive(2, block_s=0.1)
    learner.announce_demand(2, held=2)
    assert learner.stats().demand == 2  # 2 − (2 − 2)
    sender.send(make_group("b1"))
    learner.receive(2, block_s=0.1)  # a delivery of the next step before the commit
    assert learner.stats().demand == 1  # 2 − (3 − 2)
    learner.commit(trained)
    # pending 1, held 2 − 2 = 0: still 2 − (1 − 0) = 1. Without taking the committed groups
    # out of `held`, the bus would say 2 − max(0, 1 − 2) = 2 and a dispatcher would
    # produce a group the step does not need.
    assert learner.stats().demand == 1
    assert learner.client.get(learner.keys.demand) == b"2 0"
    sender.send(make_group("b2"))
    learner.receive(2, block_s=0.1)
    assert learner.stats().demand == 0


def test_a_commit_of_nothing_pending_leaves_the_demand_alone(bus):
    _, _, sender, learner = bus
    sender.send(make_group("c1"))
    (delivery,) = learner.receive(1, block_s=0.1)
    learner.commit([delivery])
    learner.announce_demand(3, held=1)
    learner.commit([delivery])  # committed twice: nothing acked the second time
    assert learner.client.get(learner.keys.demand) == b"3 1"


def test_announce_rejects_negative_counts(bus):
    *_, learner = bus
    with pytest.raises(ValueError, match="demand needs groups >= 0 and held >= 0"):
        learner.announce_demand(-1, held=0)


def _dispatcher(redis_url: str, cfg: BusConfig, dispatch: str, groups_per_step: int = 3) -> Dispatcher:
    run = RunConfig.model_validate(
        {
            "redis": {"url": redis_url},
            "bus": cfg.model_dump(),
            "learner": {"groups_per_step": groups_per_step, "max_policy_lag": 2},
            "rollout": {"dispatch": dispatch},
        }
    )
    # No curriculum: `_wanted` only reads the bus and the groups in play.
    return Dispatcher(run, curriculum=None, run_dir="/nonexistent")


def test_on_demand_dispatches_what_the_learner_waits_for_minus_what_is_coming(bus, redis_url):
    _, cfg, sender, learner = bus
    dispatcher = _dispatcher(redis_url, cfg, "on_demand")
    # Before the learner has said anything: one step's worth, so rollouts overlap its start-up.
    assert dispatcher._wanted(learner.stats()) == 3
    learner.announce_demand(3, held=0)
    dispatcher.pending = {"g1": None, "g2": None, "g3": None}  # three groups being played
    assert dispatcher._wanted(learner.stats()) == 0
    # g1 finished and is on the bus, undelivered: still coming, so nothing more.
    del dispatcher.pending["g1"]
    sender.send(make_group("g1"))
    assert dispatcher._wanted(learner.stats()) == 0
    # g2's rollout failed (it never reaches the bus): one replacement.
    del dispatcher.pending["g2"]
    assert dispatcher._wanted(learner.stats()) == 1
    learner.receive(3, block_s=0.1)
    assert dispatcher._wanted(learner.stats()) == 1  # 3 − (1 − 0) − 1 in play − 0 undelivered
    # The step is complete and training: nothing, whatever is committed meanwhile.
    learner.announce_demand(0, held=1)
    del dispatcher.pending["g3"]
    assert dispatcher._wanted(learner.stats()) == 0


def test_ahead_keeps_the_lag_bound_worth_of_groups_outstanding(bus, redis_url):
    _, cfg, sender, learner = bus
    dispatcher = _dispatcher(redis_url, cfg, "ahead")
    assert dispatcher.max_ahead == 6  # groups_per_step 3 × max_policy_lag 2
    learner.announce_demand(0, held=0)  # demand is not what ahead mode reads
    dispatcher.pending = {"g1": None}
    sender.send(make_group("g0"))
    learner.receive(1, block_s=0.1)  # delivered, not committed: still outstanding
    sender.send(make_group("g2"))
    assert dispatcher._wanted(learner.stats()) == 6 - 1 - 2


def test_auto_dispatch_takes_turns_on_one_machine_and_overlaps_on_a_cluster():
    assert dispatch_mode(RunConfig()) == "on_demand"
    names = ("policy", "env", "reward", "curriculum")
    addresses = {name: f"127.0.0.1:{50051 + i}" for i, name in enumerate(names)}
    cluster = RunConfig.model_validate({"stack": {"mode": "cluster", "addresses": addresses}})
    assert dispatch_mode(cluster) == "ahead"
    assert dispatch_mode(RunConfig.model_validate({"rollout": {"dispatch": "ahead"}})) == "ahead"


def test_the_ledger_accounts_for_every_produced_group_through_the_bus(bus, redis_url):
    _, cfg, sender, learner = bus
    for index in range(5):
        sender.send(make_group(f"g{index}"))
    delivered = learner.receive(3)  # g0, g1, g2
    learner.commit(delivered[:2])  # g0, g1: trained and committed
    learner.reject(delivered[2], "bad group")  # g2: dead-lettered
    learner.commit_group_ids(["g3"])  # g3: committed, never trained; g4 stays queued
    assert sender.discard("g5") and sender.discard("g6")  # played, no signal, not sent
    assert not sender.discard("g5") and not sender.discard("g0")  # a retry; an id already sent
    run = RunConfig.model_validate({"redis": {"url": redis_url}, "bus": cfg.model_dump()})
    # Trained: g0, g1 twice, and "x", which no producer sent.
    assert ledger(run, ["g0", "g1", "g1", "x"]) == {
        "produced": 5,
        "trained": 4,
        "trained_twice": 1,  # 4 trained − 3 distinct
        "dead_lettered": 1,  # g2
        "committed_untrained": 1,  # {g0, g1, g3} − {g0, g1, x} = {g3}
        "queued": 1,  # g4
        "discarded": 2,  # g5, g6 (each once; g0 was produced, so not discarded)
        "lost": 0,  # {g0..g4} − trained − dead − committed − queued = ∅
        "trained_unknown": 1,  # x
    }

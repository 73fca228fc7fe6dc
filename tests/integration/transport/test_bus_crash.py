"""Crash tests of the trajectory bus with real processes and real Redis servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from outrider.config import BusConfig
from outrider.transport import RedisReceiver, RedisSender, start_embedded
from testkit.bus import make_group

TESTS_DIR = Path(__file__).resolve().parents[2]


def _consumer(url, prefix, name, ledger, total, *extra) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR)}
    command = [sys.executable, "-m", "testkit.bus_consumer", url, prefix, name, str(ledger), "--total", str(total)]
    return subprocess.Popen([*command, *extra], env=env)


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


@pytest.mark.slow
def test_10k_groups_two_consumers_one_sigkilled_every_group_trained_exactly_once(redis_url, bus_prefix, tmp_path):
    total = 10_000
    client = redis.Redis.from_url(redis_url)
    cfg = BusConfig(prefix=bus_prefix, max_len=2_000)
    sender = RedisSender(client, cfg)
    RedisReceiver(client, cfg, name="setup")  # creates the consumer group before anything is read
    produced = [f"group-{index:05d}" for index in range(total)]
    producer = threading.Thread(target=lambda: [sender.send(make_group(gid, tokens=16)) for gid in produced])
    producer.start()

    ledger_a, ledger_b = tmp_path / "a.ledger", tmp_path / "b.ledger"
    victim = _consumer(redis_url, bus_prefix, "a", ledger_a, total, "--pause-after", "20")
    survivor = _consumer(redis_url, bus_prefix, "b", ledger_b, total, "--claim-idle-ms", "1000")
    try:
        _wait_for(lambda: Path(str(ledger_a) + ".holding").exists(), 120, "consumer a to hold a batch")
        held = Path(str(ledger_a) + ".holding").read_text().split()
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        producer.join(timeout=120)
        assert survivor.wait(timeout=180) == 0
    finally:
        for process in (victim, survivor):
            if process.poll() is None:
                process.kill()

    trained_by_a = ledger_a.read_text().split()
    trained_by_b = ledger_b.read_text().split()
    # Batches hold up to 50 groups: fewer when the consumer catches up with the producer.
    assert 20 <= len(trained_by_a) <= 20 * 50, "a committed 20 batches, then died holding the 21st"
    assert 1 <= len(held) <= 50
    assert not set(held) & set(trained_by_a), "what a held when it died was not committed by a"
    assert set(held) <= set(trained_by_b), "what a held when it died was trained by b"
    assert not set(trained_by_a) & set(trained_by_b), "no group was trained by both consumers"
    assert len(trained_by_a) + len(trained_by_b) == total, "no group was trained twice by one consumer"
    assert sorted(trained_by_a + trained_by_b) == produced, "every produced group was trained"
    stats = RedisReceiver(client, cfg, name="audit").stats()
    assert stats.produced == stats.committed == total
    assert stats.commit_duplicates == 0 and stats.queued == 0 and stats.pending == 0
    assert stats.reclaimed >= len(held), "the dead consumer's batch was reclaimed"
    assert RedisReceiver(client, cfg, name="audit").committed_ids() == set(produced)
    sender.delete()


@pytest.mark.slow
def test_redis_restart_during_production_loses_nothing(tmp_path):
    data_dir = tmp_path / "valkey"
    server = start_embedded(data_dir=data_dir, persistence=True)
    port, url = server.port, server.connection_url
    total = 600
    cfg = BusConfig(prefix="restart", retry_backoff_s=0.05)
    sender = RedisSender(redis.Redis.from_url(url, socket_timeout=2), cfg)
    RedisReceiver(redis.Redis.from_url(url), cfg, name="setup")
    sent = []

    def produce():
        for index in range(total):
            sender.send(make_group(f"g{index:04d}"))
            sent.append(index)

    producer = threading.Thread(target=produce)
    producer.start()
    _wait_for(lambda: len(sent) >= total // 3, 60, "a third of the groups to be sent")
    server.terminate()  # SIGKILL: a crash, not a shutdown
    time.sleep(1.0)  # the producer hits connection errors meanwhile
    assert len(sent) < total, "the producer was still producing when Redis died"
    server = start_embedded(port=port, data_dir=data_dir, persistence=True)
    try:
        producer.join(timeout=120)
        assert len(sent) == total
        receiver = RedisReceiver(redis.Redis.from_url(url), cfg, name="after")
        received = []
        while batch := receiver.receive(100, block_s=0.2):
            received += [d.group.group_id for d in batch]
            receiver.commit(batch)
        assert sorted(received) == [f"g{index:04d}" for index in range(total)]
    finally:
        server.stop()

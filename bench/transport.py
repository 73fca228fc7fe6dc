"""Throughput of the trajectory bus versus raw Redis Streams, in one run.

    .venv/bin/python bench/transport.py [--groups 2000] [--redis-url URL]

One producer process and one consumer process move N TrajectoryGroups of
8 trajectories x 1,024 tokens through
  (a) the bus: RedisSender.send -> RedisReceiver.receive (parse + validate) -> commit;
  (b) raw Redis: XADD of the same bytes -> XREADGROUP -> XACK, nothing else.
Both on the same server, one after the other. Reports groups/s, MB/s and
the ratio bus/raw (goal >= 0.5). Without --redis-url it measures the embedded
valkey-server and, when reachable, the Redis at 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import random
import time
import uuid

import redis

from outrider.config import BusConfig
from outrider.proto.v1.trajectory_pb2 import Trajectory, TrajectoryGroup, Turn
from outrider.transport import RedisReceiver, RedisSender, start_embedded

TRAJECTORIES, TOKENS, PROMPT = 8, 1024, 256
BATCH = 16


def make_group(group_id: str, rng: random.Random) -> TrajectoryGroup:
    group = TrajectoryGroup(group_id=group_id, env="bench", task_id="t", policy_version=1)
    for index in range(TRAJECTORIES):
        completion = TOKENS - PROMPT
        group.trajectories.append(
            Trajectory(
                trajectory_id=f"{group_id}/{index}",
                prompt_length=PROMPT,
                token_ids=[rng.randrange(49152) for _ in range(TOKENS)],
                logprobs=[0.0] * PROMPT + [-rng.random() * 5 for _ in range(completion)],
                loss_mask=[False] * PROMPT + [True] * completion,
                turns=[Turn(start=PROMPT, completion_length=completion, policy_version=1)],
                outcome_reward=float(index % 2),
            )
        )
    return group


def _templates(count: int = 16) -> list[TrajectoryGroup]:
    rng = random.Random(0)
    return [make_group(f"template-{i}", rng) for i in range(count)]


# --- the bus ---------------------------------------------------------------


def bus_producer(url: str, prefix: str, n: int) -> None:
    sender = RedisSender(redis.Redis.from_url(url), BusConfig(prefix=prefix, max_len=256))
    templates = _templates()
    for index in range(n):
        group = templates[index % len(templates)]
        group.group_id = f"g{index}"
        sender.send(group)


def bus_consumer(url: str, prefix: str, n: int, done: mp.Queue) -> None:
    receiver = RedisReceiver(redis.Redis.from_url(url), BusConfig(prefix=prefix, block_ms=1000), name="bench")
    received = size = 0
    while received < n:
        deliveries = receiver.receive(BATCH)
        receiver.commit(deliveries)
        received += len(deliveries)
        size += sum(d.size_bytes for d in deliveries)
    done.put((time.perf_counter(), size))


# --- raw Redis Streams -----------------------------------------------------


def raw_producer(url: str, prefix: str, n: int) -> None:
    client = redis.Redis.from_url(url)
    payloads = [group.SerializeToString() for group in _templates()]
    for index in range(n):
        # The same bound as the bus (256 queued), checked the cheapest way.
        while client.xlen(f"{prefix}:raw") >= 256:
            time.sleep(0.001)
        client.xadd(f"{prefix}:raw", {"gid": f"g{index}", "data": payloads[index % len(payloads)]})


def raw_consumer(url: str, prefix: str, n: int, done: mp.Queue) -> None:
    client = redis.Redis.from_url(url)
    stream = f"{prefix}:raw"
    received = size = 0
    while received < n:
        reply = client.xreadgroup("g", "bench", {stream: ">"}, count=BATCH, block=1000)
        entries = reply[0][1] if reply else []
        if entries:
            ids = [entry_id for entry_id, _ in entries]
            client.xack(stream, "g", *ids)
            client.xdel(stream, *ids)
        received += len(entries)
        size += sum(len(fields[b"data"]) for _, fields in entries)
    done.put((time.perf_counter(), size))


def measure(url: str, n: int, kind: str) -> tuple[float, float]:
    """Return (groups/s, MB/s) for `kind` in {"bus", "raw"}."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(url)
    if kind == "raw":
        client.xgroup_create(f"{prefix}:raw", "g", id="0", mkstream=True)
        producer, consumer = raw_producer, raw_consumer
    else:
        RedisReceiver(client, BusConfig(prefix=prefix), name="setup")
        producer, consumer = bus_producer, bus_consumer
    done: mp.Queue = mp.Queue()
    consumer_process = mp.Process(target=consumer, args=(url, prefix, n, done))
    producer_process = mp.Process(target=producer, args=(url, prefix, n))
    consumer_process.start()
    start = time.perf_counter()
    producer_process.start()
    end, size = done.get(timeout=600)
    producer_process.join()
    consumer_process.join()
    client.delete(*client.keys(f"{prefix}:*"))
    seconds = end - start
    return n / seconds, size / seconds / 1e6


def run(url: str, label: str, n: int) -> None:
    measure(url, max(50, n // 20), "bus")  # warm-up: imports, script cache, allocator
    raw = measure(url, n, "raw")
    bus = measure(url, n, "bus")
    print(f"\n{label} ({url}), {n} groups of {TRAJECTORIES} x {TOKENS} tokens")
    print(f"  raw XADD/XREADGROUP/XACK : {raw[0]:8.1f} groups/s  {raw[1]:7.1f} MB/s")
    print(f"  outrider bus             : {bus[0]:8.1f} groups/s  {bus[1]:7.1f} MB/s")
    print(f"  ratio bus/raw            : {bus[0] / raw[0]:.2f}  (goal >= 0.50)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=2000)
    parser.add_argument("--redis-url", help="measure only this server")
    args = parser.parse_args()
    print(f"machine: {platform.node()} {platform.machine()}, {mp.cpu_count()} cores, Python {platform.python_version()}")
    size = len(_templates(1)[0].SerializeToString())
    print(f"payload: {size / 1024:.1f} KiB per group")
    if args.redis_url:
        run(args.redis_url, "given server", args.groups)
        return
    server = start_embedded()
    try:
        run(server.connection_url, "embedded valkey-server", args.groups)
    finally:
        server.stop()
    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        print("\n(no Redis at 127.0.0.1:6379; skipped)")
        return
    run("redis://127.0.0.1:6379/0", "system Redis", args.groups)


if __name__ == "__main__":
    main()

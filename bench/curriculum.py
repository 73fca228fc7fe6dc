"""Curriculum NextTasks latency at 100k tasks: the vectorised sampler vs a Python loop, and over gRPC.

    .venv/bin/python bench/curriculum.py [--tasks 100000] [--n 64] [--redis-url URL]

Population: 100k tasks in 4 environments (mix weights 4:2:1:1), difficulty 0-4;
20% of the tasks already have statistics. Strategy: learnability with the DAPO
exclusion filter. Measured in one run:
  (a) Curriculum.sample(n) in process (weights cached, Gumbel-top-k);
  (b) baseline: the same distribution computed the obvious way, a Python loop
      over every task per call and sequential draws without replacement;
  (c) NextTasks(n) and ReportOutcomes(n outcomes of 8 attempts) through the gRPC
      service, each call persisted to Redis (system Redis when reachable, else
      the embedded server); plus the service's start-up time (pool + state).
Reports p50/p95 latencies and the ratio baseline/ours.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from outrider.config import CurriculumServiceConfig, RedisConfig, ServerConfig
from outrider.config.curriculum import DatasetPoolConfig, ExclusionConfig, LearnabilityStrategy
from outrider.services.curriculum.strategies import Curriculum
from outrider.services.curriculum.table import TaskInfo

ENVS = {"math": 4.0, "code": 2.0, "tool": 1.0, "guess": 1.0}


def population(n: int) -> list[TaskInfo]:
    envs = list(ENVS)
    return [TaskInfo(envs[i % 4], f"t{i:07d}", float(i % 5)) for i in range(n)]


def warm(curriculum: Curriculum, fraction: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(curriculum.table), size=int(fraction * len(curriculum.table)), replace=False)
    for row in rows:
        curriculum.report(int(row), (rng.random(8) < rng.random()).astype(float).tolist())
    curriculum.after_reports(rows)


def naive_sample(c: Curriculum, n: int, rng: random.Random) -> list[int]:
    """Baseline: Python loops over all tasks, then n sequential weighted draws."""
    t, cfg = c.table, c.strategy.cfg
    weights = []
    for row in range(len(t)):
        if t.excluded_until[row] > c.clock:
            weights.append(0.0)
            continue
        p = (t.recent_passes[row] + cfg.prior_strength) / (t.recent_count[row] + 2 * cfg.prior_strength)
        weights.append(max(p * (1 - p), cfg.min_weight))
    env_sums = {}
    for row, w in enumerate(weights):
        env_sums[t.env_idx[row]] = env_sums.get(t.env_idx[row], 0.0) + w
    mix_total = sum(c.mix[e] for e in env_sums if env_sums[e] > 0)
    probs = [w * c.mix[t.env_idx[row]] / mix_total / env_sums[t.env_idx[row]] if w else 0.0 for row, w in enumerate(weights)]
    chosen: list[int] = []
    for _ in range(n):
        row = rng.choices(range(len(probs)), weights=probs)[0]
        chosen.append(row)
        probs[row] = 0.0
    return chosen


def percentiles(samples: list[float]) -> tuple[float, float]:
    return float(np.percentile(samples, 50)) * 1e3, float(np.percentile(samples, 95)) * 1e3


def measure(fn, calls: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process-CPU seconds per call (CPU time ignores the neighbours on a shared box)."""
    wall, cpu = [], []
    for _ in range(calls):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return wall, cpu


async def served(tasks: list[TaskInfo], n: int, redis_url: str, calls: int) -> dict:
    import grpc

    from outrider.proto.v1 import curriculum_pb2, curriculum_pb2_grpc
    from outrider.services.curriculum.server import create_server
    from outrider.services.curriculum.store import RedisCurriculumStore

    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as folder:
        pools = []
        for env in ENVS:
            path = Path(folder) / f"{env}.jsonl"
            path.write_text("".join(json.dumps({"id": t.task_id, "difficulty": t.difficulty, "prompt": "p"}) + "\n" for t in tasks if t.env == env))
            pools.append(DatasetPoolConfig(env=env, path=str(path)))
        cfg = CurriculumServiceConfig(
            server=ServerConfig(metrics_port=None), redis=RedisConfig(url=redis_url), key_prefix=prefix, pools=pools,
            strategy=LearnabilityStrategy(), exclusion=ExclusionConfig(enabled=True), env_weights=ENVS,
        )
        start = time.perf_counter()
        built = await create_server(cfg)
        await built.start()
        await built.core.wait_ready(600)
        startup = time.perf_counter() - start
    rng = np.random.default_rng(0)
    next_lat, report_lat = [], []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as channel:
        stub = curriculum_pb2_grpc.CurriculumServiceStub(channel)
        for _ in range(calls):
            t0 = time.perf_counter()
            reply = await stub.NextTasks(curriculum_pb2.NextTasksRequest(n=n))
            t1 = time.perf_counter()
            outcomes = [curriculum_pb2.TaskOutcome(env=t.env, task_id=t.id, rewards=(rng.random(8) < 0.5).astype(float).tolist()) for t in reply.tasks]
            t2 = time.perf_counter()
            await stub.ReportOutcomes(curriculum_pb2.ReportOutcomesRequest(outcomes=outcomes))
            next_lat.append(t1 - t0)
            report_lat.append(time.perf_counter() - t2)
    await built.stop(0)
    store = RedisCurriculumStore(redis_url, prefix)
    await store.clear()
    await store.close()
    return {"startup_s": startup, "next": percentiles(next_lat), "report": percentiles(report_lat)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--baseline-calls", type=int, default=10)
    parser.add_argument("--redis-url", default=None)
    args = parser.parse_args()
    tasks = population(args.tasks)
    curriculum = Curriculum(tasks, LearnabilityStrategy(), ExclusionConfig(enabled=True), ENVS, seed=0)
    warm(curriculum, 0.2, seed=1)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.tasks} tasks, n={args.n}")
    ours_wall, ours_cpu = measure(lambda: curriculum.sample(args.n), args.calls)
    rng = random.Random(0)
    base_wall, base_cpu = measure(lambda: naive_sample(curriculum, args.n, rng), args.baseline_calls)
    for name, wall, cpu in (("Curriculum.sample", ours_wall, ours_cpu), ("baseline loop", base_wall, base_cpu)):
        (w50, w95), (c50, c95) = percentiles(wall), percentiles(cpu)
        print(f"in process {name:<18}: wall p50 {w50:8.2f} ms p95 {w95:8.2f} ms | CPU p50 {c50:8.2f} ms p95 {c95:8.2f} ms")
    print(f"ratio baseline / ours (p50): {percentiles(base_wall)[0] / percentiles(ours_wall)[0]:.0f}x wall, {percentiles(base_cpu)[0] / percentiles(ours_cpu)[0]:.0f}x CPU")
    url = args.redis_url
    handle = None
    if url is None:
        import redis

        try:
            redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=0.5).ping()
            url = "redis://127.0.0.1:6379/0"
        except redis.RedisError:
            from outrider.transport import start_embedded

            handle = start_embedded()
            url = handle.connection_url
    result = asyncio.run(served(tasks, args.n, url, args.calls))
    print(f"gRPC (Redis {url}): start-up with {args.tasks} tasks {result['startup_s']:.2f} s")
    print(f"  NextTasks(n={args.n})        : p50 {result['next'][0]:.2f} ms  p95 {result['next'][1]:.2f} ms")
    print(f"  ReportOutcomes({args.n} x 8)   : p50 {result['report'][0]:.2f} ms  p95 {result['report'][1]:.2f} ms")
    if handle is not None:
        handle.stop()


if __name__ == "__main__":
    main()

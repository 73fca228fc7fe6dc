"""Latency and throughput of sandboxed runs of a trivial Python snippet, in one run.

    .venv/bin/python bench/sandbox.py [--runs 60] [--gvisor-runs 30] [--concurrency 2]

Variants, one after the other on the same snippet (`print(sum(range(100)))`):
  bare        subprocess.run([python3, -c, snippet], capture_output=True): the baseline;
  subprocess  Outrider's `subprocess` backend (workspace, uid, rlimits, output capture; no isolation);
  bwrap       the `bwrap` backend (namespaces + the same);
  gvisor      the `gvisor` backend (runsc with an OCI bundle).
Latency: sequential runs after 3 warm-up runs, in interleaved rounds (p50, p95).
Throughput: executions/s with `--concurrency` runs at once. Reports each variant's p50
overhead over bare and the ratio; goal: bwrap p50 overhead <= 15 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from outrider.envs.sandbox import Limits, SandboxOptions, backend_class

SNIPPET = "print(sum(range(100)))\n"
EXPECTED = "4950\n"
WARMUP = 3


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def bare_run(python: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([python, "-c", SNIPPET], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    assert done.stdout == EXPECTED, done
    return elapsed


def sandbox_run(sandbox) -> float:
    start = time.perf_counter()
    result = sandbox.run(SNIPPET)
    elapsed = time.perf_counter() - start
    assert result.stdout == EXPECTED and result.ok, result
    return elapsed


async def throughput(run_one, total: int, concurrency: int) -> float:
    """Executions per second with `concurrency` runs in flight."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one():
        async with semaphore:
            await asyncio.to_thread(run_one)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(total)))
    return total / (time.perf_counter() - start)


def measure(variants: dict, runs: dict[str, int], concurrency: int) -> list[dict]:
    """Latencies in interleaved rounds (one run of each variant per round, so load
    from other processes on a shared machine hits every variant alike), then each
    variant's throughput."""
    for run_one in variants.values():
        for _ in range(WARMUP):
            run_one()
    latencies: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(max(runs.values())):
        for name, run_one in variants.items():
            if round_ < runs[name]:
                latencies[name].append(run_one())
    rows = []
    for name, run_one in variants.items():
        values = latencies[name]
        rows.append({
            "variant": name,
            "runs": len(values),
            "min_ms": 1000 * min(values),
            "p50_ms": 1000 * statistics.median(values),
            "p95_ms": 1000 * percentile(values, 95),
            "mean_ms": 1000 * statistics.fmean(values),
            "executions_per_s": asyncio.run(throughput(run_one, runs[name], concurrency)),
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60, help="runs per variant (bare, subprocess, bwrap)")
    parser.add_argument("--gvisor-runs", type=int, default=30, help="runs of the gvisor variant (it is slower)")
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 2, help="runs in flight for the throughput figure")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    options = SandboxOptions(workspace_root=Path(tempfile.mkdtemp(prefix="outrider-sandbox-bench-")))
    options.workspace_root.chmod(0o711)  # the runs' uids must reach their folders (gvisor)
    limits = Limits(wall_time_s=30, cpu_time_s=30)
    variants = {"bare": lambda: bare_run(options.python)}
    runs = {"bare": args.runs}
    for name, count in (("subprocess", args.runs), ("bwrap", args.runs), ("gvisor", args.gvisor_runs)):
        cls = backend_class(name)
        reason = cls.unavailable_reason(options)
        if reason is not None:
            print(f"{name}: skipped ({reason})")
            continue
        sandbox = cls(options, limits)
        variants[name] = lambda sandbox=sandbox: sandbox_run(sandbox)
        runs[name] = count
    try:
        rows = measure(variants, runs, args.concurrency)
    finally:
        shutil.rmtree(options.workspace_root, ignore_errors=True)
    base, base_min = rows[0]["p50_ms"], rows[0]["min_ms"]
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; load average after: {load}")
    print(f"python in sandbox: {options.python}; snippet: {SNIPPET.strip()!r}; throughput with {args.concurrency} runs in flight\n")
    print("| variant | runs | min ms | p50 ms | p95 ms | executions/s | p50 overhead vs bare | p50 ratio | min overhead |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        row["p50_overhead_ms"] = row["p50_ms"] - base
        row["p50_ratio"] = row["p50_ms"] / base
        row["min_overhead_ms"] = row["min_ms"] - base_min
        print(f"| {row['variant']} | {row['runs']} | {row['min_ms']:.1f} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} "
              f"| {row['executions_per_s']:.1f} | {row['p50_overhead_ms']:+.1f} ms | {row['p50_ratio']:.2f} | {row['min_overhead_ms']:+.1f} ms |")
    bwrap = next((row for row in rows if row["variant"] == "bwrap"), None)
    if bwrap is not None:
        verdict = "met" if bwrap["p50_overhead_ms"] <= 15 else "NOT met"
        print(f"\ngoal bwrap p50 overhead <= 15 ms: {verdict} ({bwrap['p50_overhead_ms']:.1f} ms)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

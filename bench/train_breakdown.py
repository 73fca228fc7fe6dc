"""Step-time breakdown and samples/s of a training run (by default: the demo config).

    .venv/bin/python bench/train_breakdown.py [--config examples/demo.yaml] [--analyze-only [--run-dir runs/demo]]

Runs `outrider train CONFIG` (unless `--analyze-only` and the run directory
already holds a finished run), then reads what the run wrote:
  * metrics.jsonl  (learner, one record per step): `step_seconds` (the learner's
    whole step: forward/backward/optimizer, checkpoint, weight sync), `sync/seconds`,
    `trajectories`, and the wall-clock `time` each step ended;
  * rollouts.jsonl (one record per rollout group): `generate_seconds` (policy
    service calls), `env_seconds` (env service calls), `reward_seconds`
    (reward assignment incl. reward/PRM service calls) and `seconds` (the whole
    group);
and reports, per learner step (steady state: steps 2..N, the first includes
start-up), the wall time, the learner's compute, weight sync, the learner's
wait for data, and the rollout work that fed it (worker-seconds, split into
generation, environment and reward). Samples/s is trained trajectories per
wall second of steady state. The baseline in the same run is the learner's
own speed: how many samples/s it would reach if rollouts were free
(trajectories / learner busy time); the ratio says how much of that the
whole loop keeps.

Then, over the same steady state (bench/breakdown_sections.py): sequences in
flight on the policy (from each group's Generate calls; plot in
RUN_DIR/breakdown/in_flight.png), CPU cores used per component (sampled while
this bench runs the training, kept in RUN_DIR/breakdown/cpu.jsonl for
--analyze-only), and RPCs per episode-turn per kind (each group's counts).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

import breakdown_sections


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        raise SystemExit(f"{path} not found: is this a finished run directory?")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def breakdown(run_dir: Path, workers: int) -> dict:
    steps = read_jsonl(run_dir / "metrics.jsonl")
    groups = [g for g in read_jsonl(run_dir / "rollouts.jsonl") if "seconds" in g]
    if len(steps) < 3:
        raise SystemExit(f"{run_dir}: need at least 3 learner steps to separate start-up from steady state")
    steady = steps[1:]
    wall = [b["time"] - a["time"] for a, b in zip(steps, steps[1:])]
    learner = [s["step_seconds"] - s.get("sync/seconds", 0.0) for s in steady]
    sync = [s.get("sync/seconds", 0.0) for s in steady]
    trajectories = sum(s["trajectories"] for s in steady)
    span = steps[-1]["time"] - steps[0]["time"]
    per_step_groups = len(groups) / len(steps)

    def per_step(key: str) -> float:
        # Worker-seconds of rollout work per learner step, and the wall seconds
        # that work takes with `workers` playing in parallel.
        return sum(g.get(key, 0.0) for g in groups) / len(steps)

    busy = sum(s["step_seconds"] for s in steady)
    return {
        "steps": len(steps),
        "groups": len(groups),
        "groups_per_step": per_step_groups,
        "wall_per_step_s": statistics.mean(wall),
        "learner_compute_s": statistics.mean(learner),
        "sync_s": statistics.mean(sync),
        "learner_wait_s": statistics.mean(w - s["step_seconds"] for w, s in zip(wall, steady)),
        "rollout_worker_s": per_step("seconds"),
        "generate_worker_s": per_step("generate_seconds"),
        "env_worker_s": per_step("env_seconds"),
        "reward_worker_s": per_step("reward_seconds"),
        "rollout_wall_s": per_step("seconds") / workers,
        "samples_per_s": trajectories / span,
        "learner_only_samples_per_s": trajectories / busy,
        "loop_over_learner": (trajectories / span) / (trajectories / busy),
        "tokens_per_step": statistics.mean(s["trajectories"] * s["response_tokens_mean"] for s in steady),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="examples/demo.yaml")
    parser.add_argument("--run-dir", type=Path, help="with --analyze-only: the run folder to read (default: <output_dir>/<name> of the config)")
    parser.add_argument("--analyze-only", action="store_true", help="read an existing run; train nothing")
    parser.add_argument("--out", type=Path, help="also write the numbers as JSON here")
    args = parser.parse_args(argv)

    config = yaml.safe_load(Path(args.config).read_text())
    if args.run_dir and not args.analyze_only:
        parser.error("--run-dir: a training run goes to <output_dir>/<name> of --config; use --run-dir with --analyze-only")
    run_dir = args.run_dir or Path(config.get("output_dir", "runs")) / config["name"]
    workers = config.get("rollout", {}).get("workers", 2)
    total = None
    samples_path = run_dir / "breakdown" / "cpu.jsonl"
    if not args.analyze_only:
        started = time.monotonic()
        command = [sys.executable, "-m", "outrider.cli.main", "train", args.config, "--overwrite"]
        process = subprocess.Popen(command)
        sampler = breakdown_sections.CpuSampler(process.pid).start()
        code = process.wait()
        samples = sampler.stop()
        if code:
            raise subprocess.CalledProcessError(code, command)
        total = time.monotonic() - started
        # Written after the run: `--overwrite` empties the run folder when it starts.
        breakdown_sections.write_samples(samples, samples_path)
    else:
        samples = read_jsonl(samples_path) if samples_path.exists() else None
    numbers = breakdown(run_dir, workers)
    numbers["total_s"] = total
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}")
    print(f"run: {run_dir}  steps {numbers['steps']}  groups {numbers['groups']} ({numbers['groups_per_step']:.1f}/step), "
          f"{workers} rollout workers" + (f", whole command {total:.0f} s" if total else ""))
    print(f"per learner step (steady state), wall {numbers['wall_per_step_s']:.1f} s:")
    print(f"  learner compute         {numbers['learner_compute_s']:7.1f} s")
    print(f"  weight sync             {numbers['sync_s']:7.1f} s")
    print(f"  learner waiting         {numbers['learner_wait_s']:7.1f} s")
    print(f"  rollout worker-seconds  {numbers['rollout_worker_s']:7.1f} s  (= {numbers['rollout_wall_s']:.1f} s wall on {workers} workers)")
    print(f"    generation            {numbers['generate_worker_s']:7.1f} s")
    print(f"    environment           {numbers['env_worker_s']:7.1f} s")
    print(f"    reward                {numbers['reward_worker_s']:7.1f} s")
    print(f"samples/s {numbers['samples_per_s']:.2f} (learner alone: {numbers['learner_only_samples_per_s']:.2f}; "
          f"ratio {numbers['loop_over_learner']:.2f}); {numbers['tokens_per_step']:.0f} trained tokens/step")
    step_times = [s["time"] for s in read_jsonl(run_dir / "metrics.jsonl")]
    groups = [g for g in read_jsonl(run_dir / "rollouts.jsonl") if "seconds" in g]
    extra = breakdown_sections.sections(groups, step_times, samples, run_dir / "breakdown")
    breakdown_sections.print_sections(extra, os.cpu_count())
    numbers.update(extra)
    if args.out:
        args.out.write_text(json.dumps(numbers, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

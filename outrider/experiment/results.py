"""An experiment's numbers, read from what its runs wrote (never computed from anything else).

Per run: metrics.jsonl (one record per learner step: the recipe's metrics) and
summary.json (the held-out evaluation before and after training: pass@k for k up to
`evaluation.samples`, outrider.train.evaluate). Per arm, over its seeds:

* curves: at each step, the mean of the seeds' values and its t-interval (stats.py);
* final: each metric's value at the run's last step, pass@1 and pass@k_max after
  training (and before it: the base model), as mean ± t-interval over seeds;
* pass@k after training at every k, mean and interval over seeds.

The base model's pass@k pools the distinct `before` evaluations of all runs (the same
model): one per run, or one per seed where the harness shared a seed's evaluation between
its arms (outrider.experiment.runner), which is then counted once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from outrider.experiment.recipe import ArmRun, TrainRecipe
from outrider.experiment.stats import CONFIDENCE, mean_interval


def read_boundary(run_dir: Path, checkpoint: str = "final") -> dict | None:
    """The reasoning-boundary numbers of one run (RUN_DIR/eval/eval.json, written by the
    `outrider eval` that `evaluation.boundary.enabled` runs after training): the base
    model against `checkpoint`. None when the run made no boundary evaluation."""
    path = run_dir / "eval" / "eval.json"
    if not path.exists():
        return None
    analysis = json.loads(path.read_text())
    comparison = analysis["comparisons"][checkpoint]
    crossover, solvable = comparison["crossover"], comparison["solvable"]
    perplexity = analysis["perplexity"]["per_checkpoint"]
    k_max = analysis["grid"]["k_max"]
    curves = {name: {str(k): v for k, v in zip(analysis["grid"]["ks"], analysis["pass_at_k"][name]["episode"]["value"])}
              for name in (comparison["base"], checkpoint)}
    return {
        "k_max": k_max,
        "tasks": len(analysis["tasks"]),
        "leader_at_1": crossover["leader_at_1"],
        "crossover_k": crossover["k"],
        "crossover_note": crossover["note"],
        "solvable": {group: solvable[group]["count"] for group in ("base_only", "other_only", "both", "neither")},
        "pass_at_k": {"base": curves[comparison["base"]], "trained": curves[checkpoint]},
        "base_ppl_median": {"base": perplexity[comparison["base"]].get("median"), "trained": perplexity[checkpoint].get("median")},
        "report": str(path.parent / "index.html"),
    }


def read_run(run: ArmRun, metric_keys: Sequence[str]) -> dict:
    """One run's measured numbers: the recipe's per-step metrics and its evaluations."""
    path = run.run_dir / "metrics.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    summary = json.loads((run.run_dir / "summary.json").read_text())
    curves = {
        key: [[r["step"], r[key]] for r in records if isinstance(r.get(key), (int, float))]
        for key in metric_keys
    }
    return {
        "arm": run.arm, "seed": run.seed, "run_dir": str(run.run_dir), "overrides": list(run.overrides),
        "steps": len(records), "train_seconds": summary.get("seconds"), "curves": curves,
        "eval_before": summary.get("before"), "eval_after": summary.get("after"),
        "boundary": read_boundary(run.run_dir),
    }


def _interval(values: list[float]) -> dict | None:
    return mean_interval(values).as_dict() if values else None


def curve_band(per_seed: list[list[list[float]]]) -> list[dict]:
    """Steps the seeds measured -> mean and t-interval over the seeds that have that step."""
    by_step: dict[int, list[float]] = {}
    for points in per_seed:
        for step, value in points:
            by_step.setdefault(int(step), []).append(float(value))
    return [{"step": step, **mean_interval(values).as_dict()} for step, values in sorted(by_step.items())]


def _pass_curve(evals: list[dict]) -> dict[str, dict]:
    if not evals:
        return {}
    ks = sorted({int(k) for e in evals for k in e["pass_at_k"]})
    return {str(k): mean_interval([e["pass_at_k"][str(k)] for e in evals if str(k) in e["pass_at_k"]]).as_dict() for k in ks}


def distinct(evals: list[dict]) -> list[dict]:
    """Each evaluation once: a seed's shared base evaluation appears in every arm's summary."""
    seen: dict[str, dict] = {}
    for e in evals:
        seen.setdefault(json.dumps(e, sort_keys=True), e)
    return list(seen.values())


def arm_summary(runs: list[dict], metric_keys: Sequence[str]) -> dict:
    final: dict[str, dict | None] = {}
    for key in metric_keys:
        final[key] = _interval([r["curves"][key][-1][1] for r in runs if r["curves"].get(key)])
    after = [r["eval_after"] for r in runs if r["eval_after"]]
    before = [r["eval_before"] for r in runs if r["eval_before"]]
    for label, evals in (("after", after), ("before", before)):
        if evals:
            k_max = str(max(e["samples"] for e in evals))
            final[f"pass@1 {label}"] = _interval([e["pass_at_k"]["1"] for e in evals])
            final[f"pass@{k_max} {label}"] = _interval([e["pass_at_k"][k_max] for e in evals if k_max in e["pass_at_k"]])
    boundaries = [r["boundary"] for r in runs if r.get("boundary")]
    if boundaries:
        final.update(boundary_summary(boundaries))
    return {
        "seeds": [r["seed"] for r in runs],
        "curves": {key: curve_band([r["curves"].get(key, []) for r in runs]) for key in metric_keys},
        "final": final,
        "pass_at_k_after": _pass_curve(after),
    }


def boundary_summary(boundaries: list[dict]) -> dict[str, dict | None]:
    """Final-table rows of the boundary evaluation over seeds. The crossover k is averaged
    over the seeds that have one (a seed where the leader at k = 1 stays ahead up to k_max
    has none; how many do is its own row)."""
    k_max = min(b["k_max"] for b in boundaries)
    rows = {
        "boundary: pass@1 base": _interval([b["pass_at_k"]["base"]["1"] for b in boundaries]),
        "boundary: pass@1 trained": _interval([b["pass_at_k"]["trained"]["1"] for b in boundaries]),
        f"boundary: pass@{k_max} base": _interval([b["pass_at_k"]["base"][str(k_max)] for b in boundaries]),
        f"boundary: pass@{k_max} trained": _interval([b["pass_at_k"]["trained"][str(k_max)] for b in boundaries]),
        "boundary: crossover k (seeds with one)": _interval([b["crossover_k"] for b in boundaries if b["crossover_k"] is not None]),
        "boundary: seeds with a crossover": _interval([1.0 if b["crossover_k"] is not None else 0.0 for b in boundaries]),
        "boundary: tasks solved by base only": _interval([b["solvable"]["base_only"] for b in boundaries]),
        "boundary: tasks solved by trained only": _interval([b["solvable"]["other_only"] for b in boundaries]),
        "boundary: base-model ppl of trained solutions (median)": _interval(
            [b["base_ppl_median"]["trained"] for b in boundaries if b["base_ppl_median"]["trained"] is not None]),
    }
    return rows


def collect(recipe: TrainRecipe, scale: str, runs: Sequence[ArmRun], command: str) -> dict:
    """The experiment's JSON: every run's numbers and every arm's summary."""
    keys = [m.key for m in recipe.metrics]
    measured = [read_run(r, keys) for r in runs]
    arms: dict[str, dict] = {}
    for arm in dict.fromkeys(r.arm for r in runs):
        mine = [m for m in measured if m["arm"] == arm]
        arms[arm] = {"overrides": mine[0]["overrides"], **arm_summary(mine, keys)}
    before = distinct([m["eval_before"] for m in measured if m["eval_before"]])
    return {
        "recipe": recipe.name,
        "question": recipe.question,
        "finding": recipe.finding,
        "scale": scale,
        "command": command,
        "interval": f"mean ± t_(1+c)/2,n−1 · s/√n over seeds, c = {CONFIDENCE} (outrider/experiment/stats.py); none for n = 1",
        "metrics": [m.model_dump() for m in recipe.metrics],
        "base_pass_at_k": _pass_curve(before),
        "arms": arms,
        "runs": measured,
    }

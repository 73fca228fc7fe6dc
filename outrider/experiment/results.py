"""An experiment's numbers, read from what its runs wrote (never computed from anything else).

Per run: metrics.jsonl (one record per learner step: the recipe's metrics) and
summary.json (the held-out evaluation before and after training: pass@k for k up to
`evaluation.samples`, outrider.train.evaluate). Per arm, over its seeds:

* curves: at each step, the mean of the seeds' values and its t-interval (stats.py);
* final: each metric's value at the run's last step, pass@1 and pass@k_max after
  training (and before it: the base model), as mean ± t-interval over seeds;
* pass@k after training at every k, mean and interval over seeds.

The base model's pass@k is every run's `before` evaluation pooled over all arms (the
same model, measured once per run).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from outrider.experiment.recipe import ArmRun, TrainRecipe
from outrider.experiment.stats import CONFIDENCE, mean_interval


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
    return {
        "seeds": [r["seed"] for r in runs],
        "curves": {key: curve_band([r["curves"].get(key, []) for r in runs]) for key in metric_keys},
        "final": final,
        "pass_at_k_after": _pass_curve(after),
    }


def collect(recipe: TrainRecipe, scale: str, runs: Sequence[ArmRun], command: str) -> dict:
    """The experiment's JSON: every run's numbers and every arm's summary."""
    keys = [m.key for m in recipe.metrics]
    measured = [read_run(r, keys) for r in runs]
    arms: dict[str, dict] = {}
    for arm in dict.fromkeys(r.arm for r in runs):
        mine = [m for m in measured if m["arm"] == arm]
        arms[arm] = {"overrides": mine[0]["overrides"], **arm_summary(mine, keys)}
    before = [m["eval_before"] for m in measured if m["eval_before"]]
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

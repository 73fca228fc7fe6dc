"""Assemble the reasoning-boundary analysis of an evaluation into one JSON-serialisable dict.

`analyze` takes the stored records (checkpoint → task_id → TaskRecord) and computes,
with the estimators of `outrider.eval.stats`:

* `pass_at_k`: per checkpoint, pass@k (within the episode) and first-try pass@k on the
  k grid, each with a percentile bootstrap interval over tasks;
* `comparisons`: per non-base checkpoint, the difference to the base per k (paired
  bootstrap interval), the crossover k with its bootstrap distribution, and the
  solvable sets at the largest k;
* `coverage`: per checkpoint, |solved| / |tasks| with its interval;
* `perplexity`: per checkpoint, the base model's perplexity of its correct solutions,
  compared with the base's own;
* `entropy`: per checkpoint, token-entropy statistics and the share of forking tokens
  above the base's threshold.

The k grid is `stats.k_grid(k_max)`, k_max = n, unless some task kept fewer than n
samples (episodes that ended with an infrastructure error are not samples): then k_max
is the smallest per-task sample count over all checkpoints, so every task has an
unbiased pass@k at every k of the grid, and `grid.truncated` lists the short tasks.
"""

from __future__ import annotations

import math

import numpy as np

from outrider.eval import stats
from outrider.eval.records import TaskRecord

__all__ = ["analyze", "SECTIONS"]

SECTIONS = ("settings", "grid", "checkpoints", "tasks", "pass_at_k", "comparisons", "coverage", "perplexity", "entropy")
"""Top-level keys of the analysis (and of eval.json)."""


def analyze(
    records: dict[str, dict[str, TaskRecord]],
    base: str,
    n: int,
    *,
    resamples: int = 1000,
    confidence: float = 0.9,
    seed: int = 0,
    forking_quantile: float = 0.8,
) -> dict:
    """The whole analysis of one evaluation (see the module docstring for its parts).

    records: checkpoint → task_id → record; every checkpoint must cover the same tasks.
    base: the checkpoint the others are compared with. n: samples requested per task.
    resamples, confidence, seed: the bootstrap (seeded numpy Generator, shared by all
    checkpoints so differences are paired). forking_quantile: the quantile of the base
    model's token entropies above which a token counts as forking (0.8 → top 20%).
    """
    names, tasks = _validate(records, base, n, resamples, confidence, forking_quantile)
    ordered = [base] + [name for name in names if name != base]
    samples = {c: np.array([records[c][t].samples for t in tasks]) for c in ordered}
    correct = {c: np.array([records[c][t].correct for t in tasks]) for c in ordered}
    first_try = {c: np.array([records[c][t].first_try for t in tasks]) for c in ordered}

    k_max = min(n, min(int(s.min()) for s in samples.values()))
    if k_max < 1:
        empty = [f"{c}/{t}" for c in ordered for t in tasks if records[c][t].samples == 0]
        raise ValueError(f"task(s) with no samples (every episode errored): {', '.join(empty[:5])}"
                         f"{' …' if len(empty) > 5 else ''}; re-run them before the analysis")
    ks = stats.k_grid(k_max)
    short = sorted({f"{c}/{t}" for c in ordered for t, s in zip(tasks, samples[c]) if s < n})

    weights = stats.bootstrap_weights(len(tasks), resamples, seed)
    per_task = {c: stats.per_task_pass_at_k(samples[c], correct[c], ks, tasks) for c in ordered}
    per_task_first = {c: stats.per_task_pass_at_k(samples[c], first_try[c], ks, tasks) for c in ordered}
    boot = {c: stats.bootstrap_means(per_task[c], weights) for c in ordered}  # (B, K)
    solved = {c: (correct[c] >= 1).astype(np.float64) for c in ordered}

    pass_section = {
        c: {"episode": _curve(per_task[c], boot[c], confidence),
            "first_try": _curve(per_task_first[c], stats.bootstrap_means(per_task_first[c], weights), confidence)}
        for c in ordered
    }
    coverage = {}
    for c in ordered:
        lo, hi = stats.percentile_interval(stats.bootstrap_means(solved[c], weights), confidence)
        coverage[c] = {"solved": int(solved[c].sum()), "tasks": len(tasks), "coverage": float(solved[c].mean()),
                       "ci": [float(lo), float(hi)]}

    comparisons = {
        other: {
            "base": base,
            "difference": _difference(per_task[other] - per_task[base], boot[other] - boot[base], confidence),
            "crossover": _crossover(base, other, per_task, boot, ks, confidence),
            "solvable": stats.solvable_sets(tasks, correct[base], correct[other]),
        }
        for other in ordered[1:]
    }
    return {
        "settings": {"base": base, "n": n, "resamples": resamples, "confidence": confidence, "seed": seed,
                     "forking_quantile": forking_quantile, "interval": "percentile bootstrap over tasks (paired)"},
        "grid": {"ks": ks, "k_max": k_max, "truncated": bool(k_max < n), "short_tasks": short},
        "checkpoints": {c: _totals(records[c], tasks) for c in ordered},
        "tasks": list(tasks),
        "pass_at_k": pass_section,
        "comparisons": comparisons,
        "coverage": coverage,
        "perplexity": _perplexity(records, ordered, tasks, base),
        "entropy": _entropy(records, ordered, tasks, base, forking_quantile),
    }


def _validate(records, base, n, resamples, confidence, forking_quantile) -> tuple[list[str], list[str]]:
    if not records:
        raise ValueError("no records to analyse")
    if base not in records:
        raise ValueError(f"base checkpoint {base!r} has no records (checkpoints: {', '.join(sorted(records))})")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if resamples < 1000:
        raise ValueError(f"resamples must be >= 1000 for a percentile interval, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if not 0 < forking_quantile < 1:
        raise ValueError(f"forking_quantile must be in (0, 1), got {forking_quantile}")
    tasks = sorted(records[base])
    if not tasks:
        raise ValueError(f"base checkpoint {base!r} has no tasks")
    for name, table in records.items():
        missing, extra = sorted(set(tasks) - set(table)), sorted(set(table) - set(tasks))
        if missing or extra:
            raise ValueError(f"checkpoint {name!r} covers different tasks than the base {base!r}: "
                             f"missing {missing[:5]}, extra {extra[:5]} (finish or resume the evaluation first)")
        over = [t for t, r in table.items() if r.samples > n]
        if over:
            raise ValueError(f"checkpoint {name!r}: task(s) {over[:5]} have more than n={n} samples")
    return list(records), tasks


def _curve(per_task: np.ndarray, boot: np.ndarray, confidence: float) -> dict:
    lo, hi = stats.percentile_interval(boot, confidence)
    return {"value": per_task.mean(axis=0).tolist(), "ci_low": lo.tolist(), "ci_high": hi.tolist()}


def _difference(per_task_diff: np.ndarray, boot_diff: np.ndarray, confidence: float) -> dict:
    """other − base per k; the interval comes from the same resampled tasks for both."""
    lo, hi = stats.percentile_interval(boot_diff, confidence)
    return {"value": per_task_diff.mean(axis=0).tolist(), "ci_low": lo.tolist(), "ci_high": hi.tolist()}


def _crossover(base, other, per_task, boot, ks, confidence) -> dict:
    curve_b, curve_o = per_task[base].mean(axis=0), per_task[other].mean(axis=0)
    if abs(curve_b[0] - curve_o[0]) <= stats.TIE_ATOL:
        return {"leader_at_1": None, "trailer": None, "k": None, "interval": [None, None], "none_share": None,
                "distribution": {}, "note": "pass@1 tied: no leader, so no crossover is defined"}
    leader, trailer = (base, other) if curve_b[0] > curve_o[0] else (other, base)
    k = stats.crossover_k(per_task[leader].mean(axis=0), per_task[trailer].mean(axis=0), ks)
    dist = stats.crossover_distribution(boot[leader], boot[trailer], ks, confidence)
    note = (f"{trailer} catches up with {leader} at k={k}" if k is not None
            else f"none in 1..{ks[-1]}: {leader} stays ahead")
    return {"leader_at_1": leader, "trailer": trailer, "k": k, **dist, "note": note}


def _totals(table: dict[str, TaskRecord], tasks: list[str]) -> dict:
    rs = [table[t] for t in tasks]
    seconds = sum(r.seconds for r in rs)
    samples = sum(r.samples for r in rs)
    return {"tasks": len(rs), "samples": samples, "correct": sum(r.correct for r in rs),
            "first_try": sum(r.first_try for r in rs), "errors": sum(r.errors for r in rs),
            "seconds": seconds, "samples_per_s": samples / seconds if seconds > 0 else None,
            "env": sorted({r.env for r in rs})}


def _perplexity(records, ordered, tasks, base) -> dict:
    """Base-model perplexity of each checkpoint's correct solutions.

    Per solution ppl = exp(−Σ log π_base / tokens); `pooled` = exp(−Σ_s Σ log π_base /
    Σ_s tokens), the perplexity of all solutions' tokens together (the token-weighted
    mean log-probability). `vs_base` compares with the base's own correct solutions:
    ratios of mean and median, and the share of this checkpoint's solutions below the
    base's median perplexity (0.5 when the two distributions agree).
    """
    ppl, pooled = {}, {}
    for c in ordered:
        sols = [s for t in tasks for s in records[c][t].solutions]
        tokens = np.array([s.tokens for s in sols], dtype=np.float64)
        sums = np.array([s.base_logprob_sum for s in sols], dtype=np.float64)
        ppl[c] = stats.perplexities(tokens, sums)
        pooled[c] = float(math.exp(-sums.sum() / tokens.sum())) if sols else None
    base_summary = stats.distribution_summary(ppl[base])
    out = {"per_checkpoint": {}, "histogram": stats.histogram(ppl, log=True)}
    for c in ordered:
        summary = stats.distribution_summary(ppl[c])
        summary["pooled"] = pooled[c]
        summary["tasks_with_solutions"] = sum(1 for t in tasks if records[c][t].solutions)
        if c != base and summary["count"] and base_summary["count"]:
            summary["vs_base"] = {
                "mean_ratio": summary["mean"] / base_summary["mean"],
                "median_ratio": summary["median"] / base_summary["median"],
                "share_below_base_median": float((ppl[c] < base_summary["median"]).mean()),
            }
        out["per_checkpoint"][c] = summary
    return out


def _entropy(records, ordered, tasks, base, forking_quantile) -> dict:
    """Token entropies pooled over each checkpoint's tasks; forking threshold from the base."""
    values = {c: np.array([h for t in tasks for h in records[c][t].entropies], dtype=np.float64) for c in ordered}
    threshold = float(np.quantile(values[base], forking_quantile)) if values[base].size else None
    return {
        "forking_threshold": threshold,
        "forking_quantile": forking_quantile,
        "per_checkpoint": {c: stats.entropy_stats(values[c], threshold) for c in ordered},
        "histogram": stats.histogram(values),
    }

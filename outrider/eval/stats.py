"""Pure estimators of the reasoning-boundary report (no I/O, float64 numpy).

Notation: T tasks, task i with n_i samples of which c_i are correct; K grid values
k_1 < … < k_K; B bootstrap resamples.

* pass@k per task is the unbiased estimator 1 − C(n_i − c_i, k)/C(n_i, k) of
  Chen et al. (2107.03374), computed in product form by
  `outrider.learner.algos.pass_at_k` (one copy of the rule); a checkpoint's pass@k is
  the mean over tasks.
* Confidence intervals come from the nonparametric bootstrap over tasks (Efron &
  Tibshirani 1993, percentile method): draw T tasks with replacement B times, take
  the mean of each resample, report the (1 − confidence)/2 and (1 + confidence)/2
  quantiles. All checkpoints share the same resampled tasks, so a difference between
  two checkpoints is resampled paired.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from outrider.learner.algos import pass_at_k

__all__ = [
    "k_grid",
    "per_task_pass_at_k",
    "bootstrap_weights",
    "bootstrap_means",
    "percentile_interval",
    "crossover_k",
    "crossover_distribution",
    "solvable_sets",
    "perplexities",
    "distribution_summary",
    "histogram",
    "entropy_stats",
    "QUANTILES",
    "TIE_ATOL",
]

QUANTILES = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
"""Quantiles reported for every distribution (perplexity, entropy)."""

TIE_ATOL = 1e-12
"""Curves closer than this are tied: the product form of pass@k rounds (0.5 may come out
as 0.49999999999999994), and a tie must not depend on that rounding."""


def k_grid(n: int) -> list[int]:
    """k = 1, 2, 4, … ≤ n, plus n itself when n is not a power of two."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    ks = [1 << i for i in range(n.bit_length()) if (1 << i) <= n]
    if ks[-1] != n:
        ks.append(n)
    return ks


def per_task_pass_at_k(samples: Sequence[int], correct: Sequence[int], ks: Sequence[int], task_ids: Sequence[str]) -> np.ndarray:
    """Unbiased pass@k of every task at every k.

    Each task uses its own sample count n_i (episodes that errored are not samples).
    A task with n_i < k has no unbiased estimate at that k: that is an error naming the
    task, never a silent clamp.
    Shape: samples, correct, task_ids (T,); ks (K,) -> (T, K) float64.
    """
    n = np.asarray(samples, dtype=np.int64)
    c = np.asarray(correct, dtype=np.int64)
    if not (n.shape == c.shape == (len(task_ids),)):
        raise ValueError(f"samples {n.shape}, correct {c.shape} and task_ids ({len(task_ids)},) must have the same length")
    for k in ks:
        short = [task_ids[i] for i in np.flatnonzero(n < k)]
        if short:
            raise ValueError(f"pass@{k} needs at least {k} samples per task; task(s) {', '.join(map(repr, short[:5]))}"
                             f"{' …' if len(short) > 5 else ''} have fewer (samples {int(n[n < k].min())})")
    bad = [task_ids[i] for i in np.flatnonzero((c < 0) | (c > n))]
    if bad:
        raise ValueError(f"correct must be within [0, samples]; task(s) {', '.join(map(repr, bad[:5]))} are not")
    out = np.empty((len(n), len(ks)), dtype=np.float64)
    nt, ct = torch.from_numpy(n), torch.from_numpy(c)
    for j, k in enumerate(ks):
        out[:, j] = pass_at_k(nt, ct, int(k)).numpy()
    return out


def bootstrap_weights(num_tasks: int, resamples: int, seed: int) -> np.ndarray:
    """How often each task is drawn in each bootstrap resample of T tasks out of T.

    Row b counts the T indices drawn uniformly with replacement (a multinomial draw), so
    the resampled mean of per-task values v is (W @ v) / T: one matrix product for all
    resamples and all checkpoints, which share W (paired resampling).
    Shape: -> (B, T) int64; each row sums to T.
    """
    if num_tasks < 1 or resamples < 1:
        raise ValueError(f"need >= 1 task and >= 1 resample, got {num_tasks} tasks, {resamples} resamples")
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, num_tasks, size=(resamples, num_tasks))
    offsets = np.arange(resamples)[:, None] * num_tasks
    return np.bincount((drawn + offsets).ravel(), minlength=resamples * num_tasks).reshape(resamples, num_tasks)


def bootstrap_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean of per-task values in each resample.  Shape: (T, ...), (B, T) -> (B, ...)."""
    values = np.asarray(values, dtype=np.float64)
    t = values.shape[0]
    if weights.shape[1] != t:
        raise ValueError(f"weights cover {weights.shape[1]} tasks, values {t}")
    flat = values.reshape(t, -1)
    return (weights.astype(np.float64) @ flat / t).reshape((weights.shape[0],) + values.shape[1:])


def percentile_interval(distribution: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval: the α/2 and 1 − α/2 quantiles, α = 1 − confidence.

    Shape: (B, ...) -> two arrays (...) float64.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    alpha = 1 - confidence
    d = np.asarray(distribution, dtype=np.float64)
    return np.quantile(d, alpha / 2, axis=0), np.quantile(d, 1 - alpha / 2, axis=0)


def crossover_k(leader: np.ndarray, trailer: np.ndarray, ks: Sequence[int]) -> int | None:
    """The smallest k in the grid at which `trailer`'s pass@k ≥ `leader`'s, or None.

    The rule of the report: the leader is the checkpoint with the strictly higher
    pass@1 on the observed data (see `crossover_distribution` for how a resample is
    judged). The crossover is min{k ∈ grid : trailer(k) ≥ leader(k) − TIE_ATOL}; on the
    observed curves it is ≥ 2 since the leader wins at k = 1. "≥" counts catching up:
    two curves that both reach 1.0 cross where they meet. None means "none in 1..n".
    Shape: leader, trailer (K,) -> int | None.
    """
    hit = np.flatnonzero(np.asarray(trailer) >= np.asarray(leader) - TIE_ATOL)
    return int(ks[hit[0]]) if hit.size else None


def crossover_distribution(leader: np.ndarray, trailer: np.ndarray, ks: Sequence[int], confidence: float) -> dict:
    """Bootstrap distribution of the crossover k with the leader fixed.

    `leader`, `trailer`: the two checkpoints' pass@k curves in each resample (the same
    resampled tasks for both). Each resample's crossover is `crossover_k` of its curves
    with the roles of the observed data kept: a resample in which the observed trailer
    already ties or leads at k = 1 gives crossover 1 (the leader itself is uncertain);
    one in which it never catches up gives "none", ordered above every k (as +∞). The
    interval is the percentile interval of that distribution over all resamples
    (inverted-CDF quantiles, so its ends are grid values); an end that falls on "none"
    is reported as None. `none_share` is the fraction of resamples with no crossover.
    Shape: leader, trailer (B, K) -> {"interval": [lo, hi], "none_share": float,
    "distribution": {k: share}}.
    """
    leader, trailer = np.asarray(leader), np.asarray(trailer)
    caught = trailer >= leader - TIE_ATOL  # (B, K)
    # Index of the first k where the trailer caught up; K ("none") where it never did.
    first = np.where(caught.any(axis=1), caught.argmax(axis=1), len(ks))
    alpha = 1 - confidence
    lo, hi = (int(np.quantile(first, q, method="inverted_cdf")) for q in (alpha / 2, 1 - alpha / 2))
    counts = np.bincount(first, minlength=len(ks) + 1) / len(first)
    dist = {str(k): float(counts[i]) for i, k in enumerate(ks) if counts[i] > 0}
    ends = [int(ks[i]) if i < len(ks) else None for i in (lo, hi)]
    return {"interval": ends, "none_share": float(counts[len(ks)]), "distribution": dist}


def solvable_sets(task_ids: Sequence[str], base_correct: Sequence[int], other_correct: Sequence[int]) -> dict:
    """Split tasks by who solved them at least once among all their samples.

    A task is solvable by a checkpoint iff it has ≥ 1 correct sample (the plug-in
    pass@n > 0: some sample of the n found an answer). Task lists are sorted.
    """
    b = np.asarray(base_correct) >= 1
    o = np.asarray(other_correct) >= 1
    ids = np.asarray(task_ids, dtype=object)
    groups = {"base_only": b & ~o, "other_only": ~b & o, "both": b & o, "neither": ~b & ~o}
    return {name: {"count": int(mask.sum()), "tasks": sorted(ids[mask].tolist())} for name, mask in groups.items()}


def perplexities(tokens: Sequence[int], logprob_sums: Sequence[float]) -> np.ndarray:
    """Per-solution perplexity under the base model: exp(−Σ log π_base / tokens).

    Shape: (S,), (S,) -> (S,) float64.
    """
    t = np.asarray(tokens, dtype=np.float64)
    lp = np.asarray(logprob_sums, dtype=np.float64)
    if t.shape != lp.shape:
        raise ValueError(f"tokens {t.shape} and logprob_sums {lp.shape} differ in shape")
    if (t < 1).any():
        raise ValueError("every solution needs >= 1 token")
    return np.exp(-lp / t)


def distribution_summary(values: np.ndarray, quantiles: Sequence[float] = QUANTILES) -> dict:
    """count, mean, median, std, min, max and quantiles (None when empty)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"count": 0, "mean": None, "median": None, "std": None, "min": None, "max": None,
                "quantiles": {str(q): None for q in quantiles}}
    return {
        "count": int(v.size),
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "std": float(v.std()),
        "min": float(v.min()),
        "max": float(v.max()),
        "quantiles": {str(q): float(np.quantile(v, q)) for q in quantiles},
    }


def histogram(groups: dict[str, np.ndarray], bins: int = 30, log: bool = False) -> dict:
    """Histograms of several groups on shared bin edges (so they can be overlaid).

    `log`: edges evenly spaced in log(value) (for perplexities, which are ≥ 1 and
    skewed). Returns {"edges": [...], "counts": {name: [...]}}; empty when no values.
    """
    arrays = {name: np.asarray(v, dtype=np.float64) for name, v in groups.items()}
    every = np.concatenate([v for v in arrays.values()]) if arrays else np.zeros(0)
    if every.size == 0:
        return {"edges": [], "counts": {name: [] for name in arrays}, "log": log}
    lo, hi = float(every.min()), float(every.max())
    if log:
        lo, hi = np.log(lo), np.log(hi)
    degenerate = hi <= lo
    if degenerate:  # one value (e.g. a single solution): a unit-wide range around it
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    if log:
        edges = np.exp(edges)
        if not degenerate:
            edges[0], edges[-1] = every.min(), every.max()  # exact ends despite exp(log(·)) rounding
    return {"edges": edges.tolist(), "counts": {name: np.histogram(v, edges)[0].tolist() for name, v in arrays.items()},
            "log": log}


def entropy_stats(entropies: np.ndarray, threshold: float | None) -> dict:
    """Token-entropy distribution and the share of "forking" tokens.

    Forking tokens (Wang et al. 2506.01939, "Beyond the 80/20 rule") are the
    high-entropy minority at which a reasoning path branches; the threshold is the
    base model's `forking_quantile` quantile of its own token entropies, so the base's
    share is ≈ 1 − forking_quantile by construction and another checkpoint's share says
    how often it still branches as much as the base does. share = |{h > threshold}| / N.
    """
    h = np.asarray(entropies, dtype=np.float64)
    out = distribution_summary(h)
    out["forking_share"] = None if h.size == 0 or threshold is None else float((h > threshold).mean())
    return out

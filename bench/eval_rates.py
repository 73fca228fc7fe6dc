"""The numbers of bench/eval.py, computed from what each side leaves behind (pure, tested).

Side (a), `outrider eval`: its sampling rate comes from what the evaluation stores.
Every rollout worker appends a line to `EVAL_DIR/logs/activity.jsonl` when it starts a
(checkpoint, task) and when it is done with it (`outrider/rollout/evaluation.py`); the
per-task counts are in `EVAL_DIR/samples/<checkpoint>.jsonl` (TaskSamples). The
sampling phase of a checkpoint is the interval

    [t_first, t_last] = [min over its "start" lines, max over its "done" lines]

so it leaves out everything before the first task reaches a worker (Redis, env and
policy service start, the workers' start) and everything after the last task is done
(scoring solutions under the base, the analysis, the report). Within it lie all the
per-task work of the pipeline: Celery dispatch, env sessions, chat templates, the
Generate RPCs, verification. With `max_entropy_tokens: 0` (as the bench sets it) a
task's "done" follows its last episode at once; with entropies the window would
also hold their ScoreTokens passes.

    samples/s = Σ_tasks samples / (t_last − t_first)
    generated tokens/s = Σ_tasks generated_tokens / (t_last − t_first)

Side (b), vLLM in-process: samples / generate wall time, tokens likewise.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence

VARIANTS = {"a": "(a) `outrider eval`", "b": "(b) vLLM in-process"}


def sampling_window(activity: Iterable[dict], checkpoint: str) -> tuple[float, float]:
    """(t_first, t_last) of `checkpoint`'s sampling phase in an activity log (see the module docstring).

    A task retried after a failed attempt has two "start" lines; the window still runs
    from the first start to the last done, the time the evaluation spent on it."""
    starts, dones = [], []
    for line in activity:
        if line.get("checkpoint") != checkpoint:
            continue
        if line.get("event") == "start":
            starts.append(float(line["time"]))
        elif line.get("event") == "done":
            dones.append(float(line["time"]))
    if not starts or not dones:
        raise ValueError(f"the activity log has no {'start' if not starts else 'done'} line of checkpoint {checkpoint!r}")
    first, last = min(starts), max(dones)
    if last <= first:
        raise ValueError(f"checkpoint {checkpoint!r}: the last done ({last}) is not after the first start ({first})")
    return first, last


def rates(samples: int, generated_tokens: int, seconds: float) -> dict:
    """samples/s and generated tokens/s over `seconds`, with the counts they came from."""
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    return {
        "samples": samples,
        "generated_tokens": generated_tokens,
        "seconds": seconds,
        "samples_per_s": samples / seconds,
        "generated_tokens_per_s": generated_tokens / seconds,
        "mean_completion_tokens": generated_tokens / samples if samples else None,
    }


def eval_rates(task_samples: Sequence, activity: Sequence[dict], checkpoint: str) -> dict:
    """Side (a): rates over the sampling window from stored TaskSamples and the activity log.

    `task_samples`: the checkpoint's TaskSamples messages (one per task). Also returned:
    the episodes that failed (`errors`, not samples) and Σ per-task seconds (the workers'
    busy time, larger than the window when tasks run in parallel)."""
    first, last = sampling_window(activity, checkpoint)
    out = rates(sum(s.samples for s in task_samples), sum(s.generated_tokens for s in task_samples), last - first)
    out.update(tasks=len(task_samples), errors=sum(s.errors for s in task_samples),
               task_seconds_sum=sum(s.seconds for s in task_samples), window=[first, last])
    return out


def prompt_check(prompts: dict[str, list[int]], task_samples: Sequence, key) -> dict:
    """Compare the prompt ids of (a)'s stored correct episodes with the bench's prompts.

    `prompts`: task key -> the ids side (b) generates from; `key(samples)` gives a
    TaskSamples' task key. Every stored solution's token_ids[:prompt_length] must equal
    its task's prompt; a task without stored solutions cannot be checked (counted)."""
    tasks = solutions = 0
    mismatches: list[str] = []
    for samples in task_samples:
        task = key(samples)
        if task not in prompts:
            mismatches.append(f"{task}: sampled by outrider eval but not in the bench's task list")
            continue
        if samples.solutions:
            tasks += 1
        for index, solution in enumerate(samples.solutions):
            solutions += 1
            stored = list(solution.token_ids[: solution.prompt_length])
            if stored != prompts[task]:
                mismatches.append(f"{task} solution {index}: prompt of {len(stored)} ids differs from the bench's "
                                  f"{len(prompts[task])} ids")
    return {"tasks_checked": tasks, "solutions_checked": solutions, "tasks": len(task_samples), "mismatches": mismatches}


_PROGRESS = re.compile(r"(\d+)/(\d+) tasks, (\d+) samples, ([0-9.]+) samples/s")


def progress_rate(output: str, label: str) -> float | None:
    """The samples/s of the last progress line of `label` that `outrider eval` printed
    (`  LABEL: done/total tasks, S samples, R samples/s, E episode errors`), or None.

    That rate runs from the moment every task was sent to the moment the driver stored
    the last result (it polls every 0.2 s), so it sits a little below the stored-window
    rate; it is what a user sees."""
    found = None
    for line in output.replace("\r", "\n").splitlines():
        head, sep, tail = line.partition(f"{label}: ")
        if sep and not head.strip() and (match := _PROGRESS.match(tail)):
            found = float(match.group(4))
    return found


def summarize(runs: Sequence[dict]) -> dict:
    """Per variant: the median (and the list, in run order) of samples/s and generated
    tokens/s over its repeats; and ratio = median_a / median_b of samples/s."""
    out: dict = {}
    for variant in VARIANTS:
        mine = [r for r in runs if r["variant"] == variant]
        if not mine:
            continue
        out[variant] = {
            "samples_per_s": [r["samples_per_s"] for r in mine],
            "median_samples_per_s": statistics.median(r["samples_per_s"] for r in mine),
            "generated_tokens_per_s": [r["generated_tokens_per_s"] for r in mine],
            "median_generated_tokens_per_s": statistics.median(r["generated_tokens_per_s"] for r in mine),
            "mean_completion_tokens": statistics.fmean(r["generated_tokens"] / r["samples"] for r in mine),
        }
    if "a" in out and "b" in out:
        out["ratio_samples_per_s"] = out["a"]["median_samples_per_s"] / out["b"]["median_samples_per_s"]
        out["ratio_generated_tokens_per_s"] = (out["a"]["median_generated_tokens_per_s"]
                                               / out["b"]["median_generated_tokens_per_s"])
    return out


def table(summary: dict) -> str:
    """The markdown table of docs/benchmarks.md's section on this bench."""
    lines = [
        "| variant | samples/s (median) | samples/s (runs) | generated tok/s (median) | mean completion tokens |",
        "| --- | --- | --- | --- | --- |",
    ]
    for variant, label in VARIANTS.items():
        if variant not in summary:
            continue
        row = summary[variant]
        runs = ", ".join(f"{v:.2f}" for v in row["samples_per_s"])
        lines.append(f"| {label} | **{row['median_samples_per_s']:.2f}** | {runs} "
                     f"| {row['median_generated_tokens_per_s']:.1f} | {row['mean_completion_tokens']:.1f} |")
    if "ratio_samples_per_s" in summary:
        lines.append(f"\n(a) / (b) samples/s = **{summary['ratio_samples_per_s']:.2f}** (goal >= 0.85); "
                     f"generated tokens/s {summary['ratio_generated_tokens_per_s']:.2f}")
    return "\n".join(lines)

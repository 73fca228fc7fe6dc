"""`outrider report RUN_DIR`: the run's curves as PNGs and an HTML page.

Reads what a run leaves behind: metrics.jsonl (one record per learner step),
eval_before.json / eval_after.json (pass@k on held-out tasks) and
summary.json (ledger, rollouts), and writes RUN_DIR/report/: the before/after
table with its standard error, pass@k before and after, the run against
wall-clock minutes, and one curve per metric by learner step; links the
reasoning-boundary report RUN_DIR/eval/index.html when `outrider eval` wrote one.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import matplotlib
import yaml

from outrider.train.selfplay_report import self_play_html

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CURVES = [
    ("reward_mean", "mean outcome reward"),
    ("solved_rate", "episodes solved"),
    ("entropy", "token entropy (nats)"),
    ("actor/approx_kl_k3", "KL(π_old ‖ π) per step (k3)"),
    ("kl_ref", "KL to the reference (nats/token)"),
    ("actor/loss", "actor loss"),
    ("critic/loss", "critic loss"),
    ("actor/grad_norm", "gradient norm"),
    ("tokens_per_s", "learner tokens/s"),
    ("policy_lag_mean", "policy lag (versions)"),
    ("response_tokens_mean", "policy tokens per episode"),
    ("reward/self_play_win", "self-play: the trained seat's win rate"),
]


def load_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a run folder?")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _save(fig, ax, path: Path) -> Path:
    """The report's common finish of a figure: a light grid, tight layout, PNG, closed."""
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _plot(records: list[dict], key: str, title: str, out: Path) -> Path | None:
    points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
    if not points:
        return None
    steps, values = zip(*points)
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    ax.plot(steps, values, marker="o", markersize=3, linewidth=1.5)
    ax.set_title(title)
    ax.set_xlabel("learner step")
    return _save(fig, ax, out / f"{key.replace('/', '_')}.png")


def _plot_pass_at_k(before: dict | None, after: dict | None, out: Path) -> Path | None:
    if not before and not after:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    for label, result, style in (("before", before, "--"), ("after", after, "-")):
        if result:
            ks = sorted(int(k) for k in result["pass_at_k"])
            ax.plot(ks, [result["pass_at_k"][str(k)] for k in ks], style, marker="o", label=f"{label} (episode)")
            ax.plot(ks, [result["first_try_pass_at_k"][str(k)] for k in ks], style, marker="x", alpha=0.6, label=f"{label} (first try)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k")
    ax.set_ylabel("pass@k")
    ax.set_title("held-out pass@k")
    ax.legend(fontsize=7)
    return _save(fig, ax, out / "pass_at_k.png")


def wall_clock_points(records: list[dict], before: dict | None, after: dict | None) -> dict:
    """The run on its wall clock, in minutes since training started.

    Training started when the evaluation before it ended (`finished_at`); a run
    without one starts at its first step's time minus that step's duration.
    Returns `train`: (minutes, solved rate or mean reward) per learner step, and
    `held_out`: (minutes, pass@1, standard error) for the evaluations before and
    after (the one after sits at its own end, or at the last step's time).
    """
    records = [r for r in records if isinstance(r.get("time"), (int, float))]  # written by every learner
    if before and before.get("finished_at"):
        origin = before["finished_at"]
    elif records:
        origin = records[0]["time"] - records[0].get("step_seconds", 0.0)
    else:
        return {"train": [], "train_metric": None, "held_out": []}
    key = "solved_rate" if any(isinstance(r.get("solved_rate"), (int, float)) for r in records) else "reward_mean"
    train = [((r["time"] - origin) / 60, r[key]) for r in records if isinstance(r.get(key), (int, float))]

    def pass1(result: dict) -> tuple[float, float]:
        p, n = result["pass_at_k"]["1"], result["tasks"] * result["samples"]
        return p, math.sqrt(p * (1 - p) / n)

    held_out = []
    if before:
        held_out.append((0.0, *pass1(before)))
    if after:
        end = after.get("finished_at") or (records[-1]["time"] if records else origin)
        held_out.append(((end - origin) / 60, *pass1(after)))
    return {"train": train, "train_metric": key, "held_out": held_out}


def _plot_wall_clock(records: list[dict], before: dict | None, after: dict | None, out: Path) -> Path | None:
    points = wall_clock_points(records, before, after)
    if not points["train"] and not points["held_out"]:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    if points["train"]:
        minutes, values = zip(*points["train"])
        label = "episodes solved per step" if points["train_metric"] == "solved_rate" else "mean reward per step"
        ax.plot(minutes, values, marker="o", markersize=3, linewidth=1.2, alpha=0.7, label=f"training: {label}")
    if points["held_out"]:
        minutes, values, errors = zip(*points["held_out"])
        ax.errorbar(minutes, values, yerr=[2 * e for e in errors], fmt="s", capsize=4, color="black",
                    label="held-out pass@1 (± 2 SE)")
    ax.set_xlabel("minutes since training started")
    ax.set_title("learning against wall-clock time")
    ax.legend(fontsize=7)
    return _save(fig, ax, out / "wall_clock.png")


def config_rows(run: dict) -> list[tuple[str, str]]:
    """What was trained, how: the few settings a reader compares runs by (from run.yaml)."""
    learner, rollout = run.get("learner", {}), run.get("rollout", {})
    algorithm = learner.get("algorithm", {})
    sampling = rollout.get("sampling", {})

    def named(entry) -> str:
        if not entry:
            return "—"
        params = ", ".join(f"{k}={v}" for k, v in (entry.get("params") or {}).items())
        return entry["name"] + (f" ({params})" if params else "")

    transforms = ", ".join(named(t) for t in algorithm.get("transforms", [])) or "none"
    return [
        ("model", str(learner.get("model", "—"))),
        ("environments", ", ".join(rollout.get("envs", [])) or "—"),
        ("algorithm", f"advantage {named(algorithm.get('advantage'))}, loss {named(algorithm.get('policy_loss'))}, "
                      f"aggregation {named(algorithm.get('aggregation'))}, transforms {transforms}"),
        ("batch", f"{learner.get('groups_per_step', '—')} groups × {rollout.get('group_size', '—')} episodes per step, "
                  f"{learner.get('max_steps', '—')} steps"),
        ("optimizer", f"lr {learner.get('optimizer', {}).get('lr', '—')}"),
        ("sampling", f"temperature {sampling.get('temperature', '—')}, max {sampling.get('max_tokens', '—')} tokens per turn, "
                     + (f"up to {rollout['max_turns']} turns" if rollout.get("max_turns") else "turns as the environment allows")),
        ("seed", str(run.get("seed", "—"))),
    ]


def timing_rows(records: list[dict]) -> list[tuple[str, str]]:
    """Where a step's wall time went, on average over the steps after the first.

    wall = time between consecutive step ends; the learner's share = step_seconds (its
    compute, weight sync and checkpoint included); waiting for rollouts = wall − that.
    """
    records = [r for r in records if isinstance(r.get("time"), (int, float))]
    if len(records) < 2:
        return []
    steady = records[1:]
    walls = [b["time"] - a["time"] for a, b in zip(records, records[1:])]

    def mean(values) -> float:
        values = list(values)
        return sum(values) / len(values) if values else 0.0

    wall = mean(walls)
    learner = mean(r.get("step_seconds", 0.0) for r in steady)
    sync = mean(r.get("sync/seconds", 0.0) for r in steady)
    checkpoint = mean(r.get("time/checkpoint_seconds", 0.0) for r in steady)
    first_to_last = records[-1]["time"] - records[0]["time"]
    return [
        ("steps 2 onwards: wall time per step", f"{wall:.1f} s ({first_to_last / 60:.1f} min from the end of step 1 to the end of step {records[-1]['step']})"),
        ("  learner compute", f"{learner - sync - checkpoint:.1f} s"),
        ("  weight sync", f"{sync:.1f} s"),
        ("  checkpoint", f"{checkpoint:.1f} s"),
        ("  waiting for rollouts", f"{max(wall - learner, 0.0):.1f} s"),
    ]


def _samples_html(run_dir: Path) -> str:
    """The first and the last step's sample episodes (samples.jsonl), escaped."""
    path = run_dir / "samples.jsonl"
    if not path.exists():
        return ""
    samples = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not samples:
        return ""
    steps = sorted({s["step"] for s in samples})
    parts = ["<h2>Sample episodes</h2>"]
    for step in dict.fromkeys((steps[0], steps[-1])):
        parts.append(f"<h3>step {step}</h3>")
        for sample in (s for s in samples if s["step"] == step):
            verdict = "solved" if sample.get("solved") else "not solved"
            parts.append(
                f"<p>reward {sample['reward']:+.3f}, {verdict} ({html.escape(str(sample.get('task_id', '')))})</p>"
                f"<pre class=\"prompt\">{html.escape(sample['prompt'])}</pre>"
                f"<pre>{html.escape(sample['completion'])}</pre>"
            )
    return "\n".join(parts)


def _table(rows: list[tuple[str, str]]) -> str:
    body = "\n".join(f"<tr><th>{html.escape(a)}</th><td>{html.escape(b)}</td></tr>" for a, b in rows)
    return f"<table>{body}</table>"


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def summary_rows(records: list[dict], before: dict | None, after: dict | None) -> list[tuple[str, str]]:
    rows = [("learner steps", str(records[-1]["step"]) if records else "0")]
    if records:
        first, last = records[: min(3, len(records))], records[-min(3, len(records)) :]

        def mean(rs, key):
            values = [r[key] for r in rs if isinstance(r.get(key), (int, float))]
            return sum(values) / len(values) if values else float("nan")

        rows += [
            ("reward (first 3 → last 3 steps)", f"{mean(first, 'reward_mean'):.3f} → {mean(last, 'reward_mean'):.3f}"),
            ("entropy (first 3 → last 3 steps)", f"{mean(first, 'entropy'):.3f} → {mean(last, 'entropy'):.3f}"),
            ("trajectories trained", str(sum(int(r.get("trajectories", 0)) for r in records))),
        ]
    for label, result in (("before", before), ("after", after)):
        if result:
            k = str(result["samples"])
            rows.append((
                f"held-out ({label}, v{result['policy_version']})",
                f"pass@1 {result['pass_at_k']['1']:.3f}, first-try pass@1 {result['first_try_pass_at_k']['1']:.3f}, "
                f"pass@{k} {result['pass_at_k'][k]:.3f} on {result['tasks']} tasks",
            ))
    if before and after:
        change, error = pass1_change(before, after)
        rows.append((
            "held-out pass@1 change (after − before)",
            f"{change:+.3f} ± {error:.3f} (1 standard error; a change within ~2 standard errors is sampling noise)",
        ))
    return rows


def pass1_change(before: dict, after: dict) -> tuple[float, float]:
    """after − before pass@1, and its standard error.

    Each pass@1 is a mean over N = tasks × samples episodes, treated as Bernoulli
    draws: se = sqrt(p (1 − p) / N); the difference of two independent estimates
    has se = sqrt(se_before² + se_after²). (Episodes of one task are correlated,
    so this understates the spread a little; it is a floor, not a bound.)
    """

    def se(result: dict) -> float:
        p, n = result["pass_at_k"]["1"], result["tasks"] * result["samples"]
        return math.sqrt(p * (1 - p) / n)

    return after["pass_at_k"]["1"] - before["pass_at_k"]["1"], math.hypot(se(before), se(after))


def render_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    records = load_metrics(run_dir)
    out = run_dir / "report"
    out.mkdir(exist_ok=True)
    before, after = _read(run_dir / "eval_before.json"), _read(run_dir / "eval_after.json")
    images = [p for key, title in CURVES if (p := _plot(records, key, title, out))]
    if (clock_plot := _plot_wall_clock(records, before, after, out)) is not None:
        images.insert(0, clock_plot)
    if (pass_plot := _plot_pass_at_k(before, after, out)) is not None:
        images.insert(0, pass_plot)
    summary = _read(run_dir / "summary.json")
    rows = summary_rows(records, before, after)
    if summary and summary.get("ledger"):
        ledger = summary["ledger"]
        rows.append(("ledger", ", ".join(f"{k} {v}" for k, v in ledger.items())))
    figures = "\n".join(f'<img src="{p.name}" alt="{p.stem}">' for p in images)
    run_yaml = run_dir / "run.yaml"
    settings = _table(config_rows(yaml.safe_load(run_yaml.read_text()) or {})) if run_yaml.exists() else ""
    timing = timing_rows(records)
    boundary = ""
    if (run_dir / "eval" / "index.html").exists():
        boundary = ('<p><a href="../eval/index.html">Reasoning-boundary report</a>: the base model against the '
                    "final weights at large k (outrider eval)</p>")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Outrider run {html.escape(run_dir.name)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:4px 8px;text-align:left}} img{{margin:6px;border:1px solid #eee}}
pre{{background:#f6f6f6;padding:6px;white-space:pre-wrap;max-width:60em}} pre.prompt{{color:#555}}</style>
</head><body>
<h1>Run {html.escape(run_dir.name)}</h1>
{boundary}
{_table(rows)}
{self_play_html(run_dir)}
<h2>Curves</h2>
{figures}
<h2>Where the time went</h2>
{_table(timing) if timing else "<p>fewer than two steps</p>"}
<h2>Configuration</h2>
{settings}
<p>The whole effective configuration is in run.yaml.</p>
{_samples_html(run_dir)}
</body></html>
"""
    index = out / "index.html"
    index.write_text(page)
    return index

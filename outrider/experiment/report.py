"""An experiment's HTML page: every arm on one plot per metric, with its band over seeds.

Renders what results.py (or surrogate.py) put in the experiment's JSON and nothing
else: the page is a view of that file, which sits next to it.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from outrider.experiment.surrogate import SurrogateConfig, objective, reward  # noqa: E402


def _save(fig, ax, path: Path) -> str:
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path.name


def _band(ax, xs, points: list[dict], label: str) -> None:
    means = [p["mean"] for p in points]
    (line,) = ax.plot(xs, means, marker="o" if len(xs) < 20 else None, markersize=3, label=label)
    if any(p["half"] is not None for p in points):
        low = [p["low"] if p["low"] is not None else p["mean"] for p in points]
        high = [p["high"] if p["high"] is not None else p["mean"] for p in points]
        ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2)


def _metric_plot(data: dict, key: str, label: str, out: Path) -> str | None:
    arms = {arm: a["curves"].get(key) or [] for arm, a in data["arms"].items()}
    if not any(arms.values()):
        return None
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    for arm, points in arms.items():
        if points:
            _band(ax, [p["step"] for p in points], points, arm)
    ax.set_xlabel("learner step")
    ax.set_ylabel(label or key)
    ax.set_title(label or key)
    ax.legend(fontsize=7)
    return _save(fig, ax, out / f"{key.replace('/', '_')}.png")


def _pass_plot(data: dict, out: Path) -> str | None:
    if not data["base_pass_at_k"] and not any(a["pass_at_k_after"] for a in data["arms"].values()):
        return None
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    base = data["base_pass_at_k"]
    if base:
        ks = sorted(int(k) for k in base)
        ax.plot(ks, [base[str(k)]["mean"] for k in ks], "k--", label="base model (before training)")
    for arm, a in data["arms"].items():
        curve = a["pass_at_k_after"]
        if curve:
            ks = sorted(int(k) for k in curve)
            _band(ax, ks, [curve[str(k)] for k in ks], f"{arm} (after)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k")
    ax.set_ylabel("pass@k (held-out)")
    ax.set_title("pass@k after training")
    ax.legend(fontsize=7)
    return _save(fig, ax, out / "pass_at_k.png")


def _cell(interval: dict | None) -> str:
    if interval is None:
        return "—"
    if interval["half"] is None:
        return f"{interval['mean']:.4g} (n=1)"
    return f"{interval['mean']:.4g} ± {interval['half']:.2g} (n={interval['n']})"


def render_experiment(data: dict, out: Path) -> Path:
    """OUT/report/index.html from the experiment's JSON `data`."""
    folder = Path(out) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    images = [_metric_plot(data, m["key"], m["label"], folder) for m in data["metrics"]]
    images.append(_pass_plot(data, folder))
    columns = list(dict.fromkeys(k for a in data["arms"].values() for k in a["final"]))
    rows = "".join(
        f"<tr><td>{html.escape(arm)}</td><td><code>{html.escape(' '.join(a['overrides']) or '(base)')}</code></td>"
        + "".join(f"<td>{_cell(a['final'].get(c))}</td>" for c in columns) + "</tr>"
        for arm, a in data["arms"].items()
    )
    header = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(data['recipe'])}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td,th{{border:1px solid #ccc;padding:3px 6px;font-size:90%}}
table{{border-collapse:collapse}}img{{max-width:49%}}</style></head><body>
<h1>Experiment {html.escape(data['recipe'])} (scale {html.escape(data['scale'])})</h1>
<p><b>Question.</b> {html.escape(data['question'])}</p>
<p><b>Published finding checked.</b> {html.escape(data['finding'])}</p>
<p><b>Command.</b> <code>{html.escape(data['command'])}</code></p>
<h2>Final values</h2>
<p>Metrics at each run's last learner step; pass@k on held-out tasks after (and before) training.
Intervals: {html.escape(data['interval'])}. All numbers are in experiment.json, read from the runs'
metrics.jsonl and summary.json.</p>
<table><tr><th>arm</th><th>differs by</th>{header}</tr>{rows}</table>
<h2>Curves</h2><p>Line: mean over seeds; band: the t-interval over seeds (absent with one seed).</p>
{''.join(f'<img src="{name}">' for name in images if name)}
{_boundary_section(data, folder)}
</body></html>"""
    index = folder / "index.html"
    index.write_text(page)
    return index


def _boundary_section(data: dict, folder: Path) -> str:
    """Per run, the reasoning-boundary evaluation's headline (its own report has the rest)."""
    runs = [r for r in data["runs"] if r.get("boundary")]
    if not runs:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(r['arm'])}</td><td>{r['seed']}</td><td>{b['tasks']}</td><td>{b['k_max']}</td>"
        f"<td>{b['pass_at_k']['base']['1']:.3f} / {b['pass_at_k']['trained']['1']:.3f}</td>"
        f"<td>{b['pass_at_k']['base'][str(b['k_max'])]:.3f} / {b['pass_at_k']['trained'][str(b['k_max'])]:.3f}</td>"
        f"<td>{html.escape(b['crossover_note'])}</td>"
        f"<td>{b['solvable']['base_only']} / {b['solvable']['other_only']} / {b['solvable']['both']} / {b['solvable']['neither']}</td>"
        f"<td><a href=\"{html.escape(os.path.relpath(b['report'], folder))}\">report</a></td></tr>"
        for r in runs for b in [r["boundary"]]
    )
    return f"""<h2>Reasoning boundary: base model vs trained, per run</h2>
<p>From each run's <code>outrider eval</code> (RUN_DIR/eval/eval.json): pass@k on held-out tasks up to
k_max, the crossover k where the model behind at k = 1 catches up, and the solvable sets at k_max.</p>
<table><tr><th>arm</th><th>seed</th><th>tasks</th><th>k_max</th><th>pass@1 base / trained</th>
<th>pass@k_max base / trained</th><th>crossover</th><th>solved by base only / trained only / both / neither</th><th></th></tr>{rows}</table>"""


# ---------------------------------------------------------------------------- surrogate-toy


def render_surrogate(data: dict, out: Path) -> Path:
    folder = Path(out) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    cfg = SurrogateConfig.model_validate(data["config"])
    bumps = cfg.bumps()
    images = []

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    mu = np.linspace(-2.0, 5.0, 200)
    sigma = np.linspace(0.02, 3.0, 150)
    grid_mu, grid_sigma = np.meshgrid(mu, sigma)
    contour = ax.contourf(grid_mu, grid_sigma, objective(grid_mu, grid_sigma, bumps), levels=30, cmap="viridis")
    fig.colorbar(contour, ax=ax, label="J(μ, σ)")
    first = data["sweeps"][0]
    for row in first["rows"]:
        path = np.array(row["path_of_run_0"])
        ax.plot(path[:, 0], path[:, 1], "w-", linewidth=0.8)
        ax.plot(path[-1, 0], path[-1, 1], "r.", markersize=5)
    ax.set_xlabel("μ")
    ax.set_ylabel("σ")
    ax.set_title(f"J(μ, σ) and one run per σ0 (β = {first['entropy_coef']})")
    images.append(_save(fig, ax, folder / "landscape.png"))

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    for sweep in data["sweeps"]:
        xs = [r["sigma0"] for r in sweep["rows"]]
        ys = [r["fraction_local"] for r in sweep["rows"]]
        # max(0, ·): at 0 or 1 the Wilson bound equals the fraction up to rounding.
        err = np.array([[max(0.0, y - r["fraction_local_wilson95"][0]), max(0.0, r["fraction_local_wilson95"][1] - y)]
                        for y, r in zip(ys, sweep["rows"])]).T
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=f"entropy bonus β = {sweep['entropy_coef']}")
    ax.set_xscale("log")
    ax.set_xlabel("initial σ0")
    ax.set_ylabel("fraction of runs ending at the local optimum")
    ax.legend(fontsize=7)
    images.append(_save(fig, ax, folder / "fraction_local.png"))

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    x = np.linspace(-2.0, 5.0, 400)
    ax.plot(x, reward(x, bumps))
    ax.set_xlabel("x")
    ax.set_ylabel("f(x)")
    ax.set_title("the reward: a local and a global bump")
    images.append(_save(fig, ax, folder / "reward.png"))

    checks = "".join(
        f"<tr><td>{c['mu']}</td><td>{c['sigma']}</td><td>{c['closed_form']['d_mu']:.5f}</td>"
        f"<td>{c['monte_carlo']['d_mu']:.5f} ± {c['monte_carlo']['se_mu']:.5f}</td>"
        f"<td>{c['closed_form']['d_sigma']:.5f}</td><td>{c['monte_carlo']['d_sigma']:.5f} ± {c['monte_carlo']['se_sigma']:.5f}</td>"
        f"<td>{c['z']['d_mu']:+.2f}, {c['z']['d_sigma']:+.2f}</td></tr>"
        for c in data["gradient_checks"]
    )
    local = "".join(f"<tr><td>{g['sigma']}</td><td>{g['d_sigma']:.5f}</td></tr>" for g in data["gradient_at_local_optimum"])
    sweeps = "".join(
        f"<tr><td>{s['entropy_coef']}</td><td>{r['sigma0']}</td><td>{r['ended_local']}/{r['runs']}</td>"
        f"<td>[{r['fraction_local_wilson95'][0]:.3f}, {r['fraction_local_wilson95'][1]:.3f}]</td>"
        f"<td>{r['final_sigma_median']:.3f}</td><td>{r['final_J_mean']:.3f}</td></tr>"
        for s in data["sweeps"] for r in s["rows"]
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>surrogate-toy</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td,th{{border:1px solid #ccc;padding:3px 6px;font-size:90%}}
table{{border-collapse:collapse}}img{{max-width:49%}}</style></head><body>
<h1>surrogate-toy</h1><p>{html.escape(data.get('question', ''))}</p>
{''.join(f'<img src="{name}">' for name in images)}
<h2>Closed-form gradient vs the log-derivative Monte-Carlo estimate</h2>
<table><tr><th>μ</th><th>σ</th><th>∂J/∂μ exact</th><th>MC ± SE</th><th>∂J/∂σ exact</th><th>MC ± SE</th><th>z (MC − exact)/SE</th></tr>{checks}</table>
<h2>∂J/∂σ at the local optimum (μ = {cfg.local.center})</h2>
<table><tr><th>σ</th><th>∂J/∂σ</th></tr>{local}</table>
<h2>Where runs end</h2>
<table><tr><th>β</th><th>σ0</th><th>ended local</th><th>Wilson 95%</th><th>median final σ</th><th>mean final J</th></tr>{sweeps}</table>
<p>All numbers: surrogate.json next to this folder.</p></body></html>"""
    index = folder / "index.html"
    index.write_text(page)
    return index


def write_json(data: dict, path: Path) -> Path:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2))
    partial.replace(path)
    return path

"""The reasoning-boundary report: index.html, PNG plots and eval.json from `analyze`'s dict.

The page follows the run report of `outrider report` (outrider/train/report.py): plain
HTML with the PNGs beside it, linked by file name, so the folder can be copied or
served as it is. Every number of the analysis is in eval.json; the page shows the
tables a reader needs to judge the question "did RL widen what the model can solve, or
only sharpen it?".
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["render_eval_report", "summary_table", "PLOTS"]

PLOTS = ("pass_at_k.png", "first_try_pass_at_k.png", "solvable.png", "perplexity.png", "entropy.png")
"""The PNGs the report can write (each only when it has data)."""

STYLE = """body{font-family:sans-serif;margin:2em;max-width:1100px}
table{border-collapse:collapse;margin:0.5em 0 1em}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}
img{margin:6px;border:1px solid #eee} details{margin:0.3em 0} code{font-size:90%}"""


def render_eval_report(eval_dir: Path, analysis: dict) -> Path:
    """Write eval_dir/index.html, the PNGs and eval.json; return the index path."""
    eval_dir = Path(eval_dir)
    eval_dir.mkdir(parents=True, exist_ok=True)
    (eval_dir / "eval.json").write_text(json.dumps(analysis, indent=2, allow_nan=False))
    plots: dict[str, Path | None] = {
        "pass_at_k.png": _plot_curves(analysis, "episode", "pass@k (solved within the episode)", eval_dir / "pass_at_k.png"),
        "first_try_pass_at_k.png": _plot_curves(analysis, "first_try", "pass@k (solved on the first turn)",
                                                eval_dir / "first_try_pass_at_k.png"),
        "solvable.png": _plot_solvable(analysis, eval_dir / "solvable.png"),
        "perplexity.png": _plot_histograms(analysis["perplexity"]["histogram"], "perplexity under the base model",
                                           "perplexity of correct solutions", eval_dir / "perplexity.png"),
        "entropy.png": _plot_histograms(analysis["entropy"]["histogram"], "token entropy (nats)",
                                        "token entropy of sampled completions", eval_dir / "entropy.png",
                                        marker=analysis["entropy"]["forking_threshold"], marker_label="forking threshold"),
    }
    for name, path in plots.items():
        if path is None and (eval_dir / name).exists():
            (eval_dir / name).unlink()  # a stale plot of an earlier render
    index = eval_dir / "index.html"
    index.write_text(_page(eval_dir.name, analysis, plots))
    return index


# --- numbers ---------------------------------------------------------------------------------------------


def _f(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _ci(lo: float | None, hi: float | None, digits: int = 3) -> str:
    return f"[{_f(lo, digits)}, {_f(hi, digits)}]"


def _k_or_none(k: int | None, k_max: int) -> str:
    return f"none in 1..{k_max}" if k is None else str(k)


def _crossover_text(cross: dict, k_max: int) -> str:
    if cross["leader_at_1"] is None:
        return cross["note"]
    lo, hi = cross["interval"]
    where = (f"catches up at k = {cross['k']}" if cross["k"] is not None
             else f"does not catch up in 1..{k_max}")
    return (f"{cross['leader_at_1']} leads at k = 1, {cross['trailer']} {where} "
            f"(interval [{_k_end(lo, k_max)}, {_k_end(hi, k_max)}], no crossover in {cross['none_share']:.0%} of resamples)")


def _k_end(k: int | None, k_max: int) -> str:
    """An end of the crossover interval; None is a resample with no crossover (beyond k_max)."""
    return f">{k_max}" if k is None else str(k)


def summary_table(analysis: dict) -> str:
    """A plain-text table for the terminal: pass@1 and pass@k_max with intervals, coverage,
    mean perplexity under the base, mean entropy, and each comparison's crossover."""
    ks = analysis["grid"]["ks"]
    k_max = ks[-1]
    conf = analysis["settings"]["confidence"]
    header = ("checkpoint", "pass@1", f"{conf:.0%} CI", f"pass@{k_max}", f"{conf:.0%} CI", "coverage",
              "ppl(base)", "entropy", "errors")
    rows = [header]
    for name, curve in analysis["pass_at_k"].items():
        ep = curve["episode"]
        ppl = analysis["perplexity"]["per_checkpoint"][name]["mean"]
        ent = analysis["entropy"]["per_checkpoint"][name]["mean"]
        rows.append((name, _f(ep["value"][0]), _ci(ep["ci_low"][0], ep["ci_high"][0]), _f(ep["value"][-1]),
                     _ci(ep["ci_low"][-1], ep["ci_high"][-1]), _f(analysis["coverage"][name]["coverage"]),
                     _f(ppl, 2), _f(ent), str(analysis["checkpoints"][name]["errors"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for other, comp in analysis["comparisons"].items():
        s = comp["solvable"]
        lines.append(f"{other} vs {comp['base']}: crossover {_crossover_text(comp['crossover'], k_max)}; solvable "
                     f"{comp['base']} only {s['base_only']['count']}, {other} only {s['other_only']['count']}, "
                     f"both {s['both']['count']}, neither {s['neither']['count']}")
    if analysis["grid"]["truncated"]:
        lines.append(f"note: k ≤ {k_max} < n = {analysis['settings']['n']} because "
                     f"{len(analysis['grid']['short_tasks'])} task(s) kept fewer samples (errors)")
    return "\n".join(lines)


# --- plots -----------------------------------------------------------------------------------------------


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _plot_curves(analysis: dict, kind: str, title: str, path: Path) -> Path | None:
    ks = analysis["grid"]["ks"]
    fig, ax = plt.subplots(figsize=(6, 3.8), dpi=100)
    for name, curve in analysis["pass_at_k"].items():
        c = curve[kind]
        (line,) = ax.plot(ks, c["value"], marker="o", markersize=3, label=name)
        ax.fill_between(ks, c["ci_low"], c["ci_high"], color=line.get_color(), alpha=0.2, linewidth=0)
    for comp in analysis["comparisons"].values() if kind == "episode" else ():
        if comp["crossover"]["k"] is not None:
            ax.axvline(comp["crossover"]["k"], color="grey", linestyle=":", linewidth=1)
    if len(ks) > 1:
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()
    ax.set_xlabel("k (log₂ scale)")
    ax.set_ylabel("pass@k")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{title}, {analysis['settings']['confidence']:.0%} bootstrap band", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _plot_solvable(analysis: dict, path: Path) -> Path | None:
    comps = analysis["comparisons"]
    if not comps:
        return None
    parts = (("both", "#4c72b0"), ("base_only", "#dd8452"), ("other_only", "#55a868"), ("neither", "#c0c0c0"))
    fig, ax = plt.subplots(figsize=(6, 1.8 + 0.5 * len(comps)), dpi=100)
    labels = [f"{other} vs {comp['base']}" for other, comp in comps.items()]
    left = [0] * len(comps)
    for key, color in parts:
        counts = [comp["solvable"][key]["count"] for comp in comps.values()]
        label = {"base_only": "base only", "other_only": "other only"}.get(key, key)
        ax.barh(labels, counts, left=left, color=color, label=label)
        left = [a + b for a, b in zip(left, counts)]
    ax.set_xlabel(f"tasks (solvable = ≥ 1 correct of the samples, k = {analysis['grid']['k_max']})")
    ax.legend(fontsize=7, ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return _save(fig, path)


def _plot_histograms(hist: dict, xlabel: str, title: str, path: Path, marker: float | None = None,
                     marker_label: str = "") -> Path | None:
    edges = hist["edges"]
    if not edges or not any(sum(c) for c in hist["counts"].values()):
        return None
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    for name, counts in hist["counts"].items():
        total = sum(counts)
        if total:
            # Shares, not counts: checkpoints with different numbers of solutions stay comparable.
            ax.stairs([c / total for c in counts], edges, label=f"{name} (N={total})", linewidth=1.5)
    if marker is not None:
        ax.axvline(marker, color="grey", linestyle=":", linewidth=1, label=marker_label)
    if hist.get("log"):
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


# --- page ------------------------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>\n{body}</table>"


def _img(plots: dict[str, Path | None], name: str) -> str:
    return f'<img src="{html.escape(name)}" alt="{html.escape(name[:-4])}">' if plots.get(name) else "<p>(no data to plot)</p>"


def _search_note(settings: dict) -> str:
    mode = settings.get("search", "none")
    return "" if mode == "none" else f" (each the best-of-search answer of one {html.escape(mode)} search)"


def _page(title: str, a: dict, plots: dict[str, Path | None]) -> str:
    s, ks = a["settings"], a["grid"]["ks"]
    conf = f"{s['confidence']:.0%}"
    sections: list[tuple[str, str, Callable[[], str]]] = [
        ("overview", "Overview", lambda: _overview(a)),
        ("pass-at-k", "pass@k", lambda: _pass_section(a, plots, conf)),
        ("crossover", "Crossover", lambda: _crossover_section(a, conf)),
        ("solvable", "Solvable sets", lambda: _solvable_section(a, plots)),
        ("perplexity", "Perplexity under the base model", lambda: _perplexity_section(a, plots)),
        ("entropy", "Token entropy", lambda: _entropy_section(a, plots)),
    ]
    toc = " · ".join(f'<a href="#{anchor}">{html.escape(head)}</a>' for anchor, head, _ in sections)
    body = "\n".join(f'<h2 id="{anchor}">{html.escape(head)}</h2>\n{make()}' for anchor, head, make in sections)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Outrider evaluation {html.escape(title)}</title>
<style>{STYLE}</style>
</head><body>
<h1>Reasoning boundary: {html.escape(", ".join(a["pass_at_k"]))}</h1>
<p>Base: <b>{html.escape(s["base"])}</b>; n = {s["n"]} samples per task{_search_note(s)}, k ∈ {{{", ".join(map(str, ks))}}};
{conf} percentile bootstrap intervals over tasks ({s["resamples"]} resamples, seed {s["seed"]}, paired across
checkpoints). Every number is in <a href="eval.json">eval.json</a>.</p>
<p>{toc}</p>
{body}
</body></html>
"""


def _overview(a: dict) -> str:
    rows = []
    for name, t in a["checkpoints"].items():
        rate = t["samples_per_s"]
        rows.append([name, ", ".join(t["env"]), str(t["tasks"]), str(t["samples"]), str(t["correct"]),
                     str(t["first_try"]), str(t["errors"]), _f(t["seconds"], 1), _f(rate, 2)])
    out = _table(["checkpoint", "env", "tasks", "samples", "correct", "first try", "errors", "seconds", "samples/s"], rows)
    g = a["grid"]
    if g["truncated"]:
        out += (f"<p>Some tasks kept fewer than n = {a['settings']['n']} samples (episodes that ended with an "
                f"infrastructure error are not samples), so the grid stops at k = {g['k_max']}: "
                f"{html.escape(', '.join(g['short_tasks'][:20]))}{' …' if len(g['short_tasks']) > 20 else ''}</p>")
    return out + "\n" + _summary_html(a)


def _summary_html(a: dict) -> str:
    return f"<pre>{html.escape(summary_table(a))}</pre>"


def _pass_section(a: dict, plots, conf: str) -> str:
    ks = a["grid"]["ks"]
    header = ["checkpoint"] + [f"k={k}" for k in ks]
    rows = []
    for kind in ("episode", "first_try"):
        for name, curve in a["pass_at_k"].items():
            c = curve[kind]
            label = name if kind == "episode" else f"{name} (first try)"
            rows.append([label] + [f"{_f(v)} {_ci(lo, hi)}" for v, lo, hi in zip(c["value"], c["ci_low"], c["ci_high"])])
    diff_rows = [[f"{other} − {comp['base']}"] + [f"{v:+.3f} {_ci(lo, hi)}" for v, lo, hi in
                                                   zip(comp["difference"]["value"], comp["difference"]["ci_low"],
                                                       comp["difference"]["ci_high"])]
                 for other, comp in a["comparisons"].items()]
    out = (f"{_img(plots, 'pass_at_k.png')}{_img(plots, 'first_try_pass_at_k.png')}\n"
           f"<p>Unbiased estimator 1 − C(n−c, k)/C(n, k) per task, averaged over tasks; value [{conf} interval].</p>\n"
           + _table(header, rows))
    if diff_rows:
        out += f"<p>Difference to the base (paired over tasks), value [{conf} interval]:</p>\n" + _table(header, diff_rows)
    return out


def _crossover_section(a: dict, conf: str) -> str:
    if not a["comparisons"]:
        return "<p>Only one checkpoint: nothing to compare.</p>"
    k_max = a["grid"]["k_max"]
    rows = []
    for other, comp in a["comparisons"].items():
        c = comp["crossover"]
        lo, hi = c["interval"]
        dist = ", ".join(f"{k}: {share:.0%}" for k, share in c["distribution"].items())
        rows.append([f"{other} vs {comp['base']}", c["leader_at_1"] or "tie", _k_or_none(c["k"], k_max),
                     f"[{_k_end(lo, k_max)}, {_k_end(hi, k_max)}]",
                     "–" if c["none_share"] is None else f"{c['none_share']:.0%}", dist, c["note"]])
    return ("<p>The checkpoint behind at k = 1 catches up at the smallest k of the grid where its pass@k ≥ the "
            "leader's. The interval is the bootstrap percentile interval of that k over resamples (a resample with no "
            f"crossover counts as beyond k = {k_max}).</p>\n"
            + _table(["pair", "leader at k=1", "crossover k", f"{conf} interval", "no crossover", "distribution", "note"],
                     rows))


def _solvable_section(a: dict, plots) -> str:
    cov_rows = [[name, str(c["solved"]), str(c["tasks"]), _f(c["coverage"]), _ci(*c["ci"])] for name, c in a["coverage"].items()]
    out = (f"{_img(plots, 'solvable.png')}\n<p>A task is solvable by a checkpoint when at least one of its samples "
           f"is correct (k = {a['grid']['k_max']}). Coverage = solved / tasks.</p>\n"
           + _table(["checkpoint", "solved", "tasks", "coverage", "interval"], cov_rows))
    for other, comp in a["comparisons"].items():
        base = comp["base"]
        names = {"base_only": f"{base} only", "other_only": f"{other} only", "both": "both", "neither": "neither"}
        rows = [[names[key], str(part["count"])] for key, part in comp["solvable"].items()]
        out += f"<h3>{html.escape(other)} vs {html.escape(base)}</h3>\n" + _table(["solved by", "tasks"], rows)
        for key, part in comp["solvable"].items():
            if part["count"]:
                ids = ", ".join(f"<code>{html.escape(t)}</code>" for t in part["tasks"])
                out += f"<details><summary>{html.escape(names[key])} ({part['count']})</summary>{ids}</details>\n"
    return out


def _perplexity_section(a: dict, plots) -> str:
    p = a["perplexity"]["per_checkpoint"]
    rows = []
    for name, d in p.items():
        q = d["quantiles"]
        vs = d.get("vs_base")
        rows.append([name, str(d["count"]), str(d["tasks_with_solutions"]), _f(d["mean"], 3), _f(d["median"], 3),
                     _f(q["0.1"], 3), _f(q["0.9"], 3), _f(d["pooled"], 3),
                     f"{vs['mean_ratio']:.3f} / {vs['median_ratio']:.3f} / {vs['share_below_base_median']:.0%}" if vs else "–"])
    return (f"{_img(plots, 'perplexity.png')}\n<p>Per correct solution, exp(−Σ log π_base / tokens): how likely the "
            "base model already found that solution. Solutions of a trained checkpoint with perplexities like the "
            "base's own were within the base's reach. Pooled = exp(−Σ log π_base / Σ tokens) over all solutions.</p>\n"
            + _table(["checkpoint", "solutions", "tasks", "mean", "median", "q10", "q90", "pooled",
                      "vs base: mean ratio / median ratio / below base median"], rows))


def _entropy_section(a: dict, plots) -> str:
    e = a["entropy"]
    rows = []
    for name, d in e["per_checkpoint"].items():
        q = d["quantiles"]
        rows.append([name, str(d["count"]), _f(d["mean"]), _f(d["median"]), _f(q["0.1"]), _f(q["0.9"]),
                     "–" if d["forking_share"] is None else f"{d['forking_share']:.1%}"])
    return (f"{_img(plots, 'entropy.png')}\n<p>Per-token entropy (nats) of sampled completions. Forking tokens: "
            f"entropy above the base model's {e['forking_quantile']:.0%} quantile "
            f"({_f(e['forking_threshold'])} nats), so the base's share is about {1 - e['forking_quantile']:.0%}.</p>\n"
            + _table(["checkpoint", "tokens", "mean", "median", "q10", "q90", "forking share"], rows))

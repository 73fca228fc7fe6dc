"""docs/research.md's result tables, generated from the experiments' JSON files.

A results table in the doc sits between two markers naming its JSON (relative to docs/):

    <!-- table: research/entropy-collapse-tiny.json -->
    | ... generated ... |
    <!-- end table -->

`python -m outrider.experiment.tables docs/research.md` rewrites every such table from
its file; tests/unit/experiment/test_experiment_tables.py fails when one is stale, so
the doc states no number its JSON does not hold.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

MARKED = re.compile(r"(<!-- table: (?P<file>[^ ]+) -->\n)(?P<body>.*?)(<!-- end table -->)", re.S)


def _interval(cell: dict | None, digits: int = 3) -> str:
    if cell is None:
        return "—"
    if cell["half"] is None:
        return f"{cell['mean']:.{digits}f}"
    return f"{cell['mean']:.{digits}f} ± {cell['half']:.{digits}f}"


def train_table(data: dict) -> str:
    """One row per arm: each metric first step → last step (mean over seeds), the held-out
    pass@1 before and after and pass@k_max after, each mean ± t-interval half-width."""
    metrics = [m["key"] for m in data["metrics"]]
    finals = [k for k in next(iter(data["arms"].values()))["final"] if k.startswith("pass@")]
    header = ["arm", "seeds", *[f"{k}: step 1 → last" for k in metrics], *finals]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for arm, a in data["arms"].items():
        cells = [f"`{arm}`", str(len(a["seeds"]))]
        for key in metrics:
            curve = a["curves"].get(key) or []
            cells.append(f"{curve[0]['mean']:.3f} → {_interval(a['final'][key])}" if curve else "—")
        cells += [_interval(a["final"].get(k)) for k in finals]
        lines.append("| " + " | ".join(cells) + " |")
    base = data["base_pass_at_k"]
    if base:
        k_max = str(max(int(k) for k in base))
        lines.append("")
        lines.append(f"Base model (its distinct evaluations before training, n = {base['1']['n']}): "
                     f"pass@1 {_interval(base['1'])}, pass@{k_max} {_interval(base[k_max])}.")
    return "\n".join(lines) + "\n"


def surrogate_table(data: dict) -> str:
    """The fraction of runs ending at the local optimum, by initial σ (rows) and entropy bonus (columns)."""
    betas = [s["entropy_coef"] for s in data["sweeps"]]
    header = ["σ0", *[f"β = {b}" for b in betas]]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for i, row in enumerate(data["sweeps"][0]["rows"]):
        cells = [str(row["sigma0"])]
        for sweep in data["sweeps"]:
            r = sweep["rows"][i]
            low, high = r["fraction_local_wilson95"]
            cells.append(f"{r['ended_local']}/{r['runs']} [{low:.2f}, {high:.2f}]")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def gradient_table(data: dict) -> str:
    lines = ["| μ | σ | ∂J/∂μ closed form | MC ± SE | ∂J/∂σ closed form | MC ± SE |", "|" + " --- |" * 6]
    for c in data["gradient_checks"]:
        mc = c["monte_carlo"]
        lines.append(f"| {c['mu']} | {c['sigma']} | {c['closed_form']['d_mu']:.5f} | {mc['d_mu']:.5f} ± {mc['se_mu']:.5f} "
                     f"| {c['closed_form']['d_sigma']:.5f} | {mc['d_sigma']:.5f} ± {mc['se_sigma']:.5f} |")
    lines.append("")
    local = ", ".join(f"σ = {g['sigma']}: {g['d_sigma']:.5f}" for g in data["gradient_at_local_optimum"])
    lines.append(f"∂J/∂σ at the local optimum μ = {data['config']['local']['center']}: {local}.")
    return "\n".join(lines) + "\n"


def boundary_table(data: dict) -> str:
    """The reasoning-boundary rows of each arm (the `boundary: …` entries of its final
    values, means ± t-interval half-widths over seeds)."""
    rows = [k for a in data["arms"].values() for k in a["final"] if k.startswith("boundary: ")]
    columns = list(dict.fromkeys(rows))
    header = ["arm", *[c.removeprefix("boundary: ") for c in columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for arm, a in data["arms"].items():
        lines.append("| " + " | ".join([f"`{arm}`", *[_interval(a["final"].get(c)) for c in columns]]) + " |")
    return "\n".join(lines) + "\n"


def table_for(path: Path) -> str:
    data = json.loads(path.read_text())
    if "sweeps" in data:
        return gradient_table(data) + "\n" + surrogate_table(data)
    if any(k.startswith("boundary: ") for a in data["arms"].values() for k in a["final"]):
        return train_table(data) + "\n" + boundary_table(data)
    return train_table(data)


def regenerate(doc: Path) -> str:
    """The doc's text with every marked table generated from its JSON."""
    text = doc.read_text()

    def fill(match: re.Match) -> str:
        return match.group(1) + table_for(doc.parent / match.group("file")) + match.group(4)

    return MARKED.sub(fill, text)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        doc = Path(name)
        doc.write_text(regenerate(doc))
        print(f"regenerated the tables of {doc}")

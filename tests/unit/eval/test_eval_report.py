"""The boundary report: every section, the PNGs it links exist, eval.json, HTML escaping."""

from __future__ import annotations

import json

import numpy as np

from outrider.eval.analysis import SECTIONS, analyze
from outrider.eval.records import Solution, TaskRecord
from outrider.eval.report import PLOTS, render_eval_report, summary_table

TASKS = ["<x>", "a&b", "t2", "t3", "t4", "t5"]


def _analysis(with_entropy: bool = True) -> dict:
    rng = np.random.default_rng(0)
    recs = {}
    for name, correct in (("base", [0, 2, 1, 0, 5, 8]), ("rl", [3, 0, 4, 0, 8, 8])):
        recs[name] = {
            t: TaskRecord(name, t, "math", 8, c, min(c, 1), 0,
                          tuple(Solution(10, float(-rng.random() * 10)) for _ in range(min(c, 2))),
                          tuple(rng.exponential(0.5, 12).tolist()) if with_entropy else (), 1.0)
            for t, c in zip(TASKS, correct)
        }
    return analyze(recs, "base", 8)


def test_report_has_every_section_links_existing_pngs_and_writes_every_number(tmp_path):
    analysis = _analysis()
    index = render_eval_report(tmp_path / "eval", analysis)
    assert index == tmp_path / "eval" / "index.html"
    page = index.read_text()
    for anchor in ("overview", "pass-at-k", "crossover", "solvable", "perplexity", "entropy"):
        assert f'<h2 id="{anchor}">' in page, anchor
    for name in PLOTS:
        assert (tmp_path / "eval" / name).stat().st_size > 0, name
        assert f'src="{name}"' in page, name
    data = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert set(SECTIONS) <= set(data)
    assert data == json.loads(json.dumps(analysis))
    assert data["pass_at_k"]["rl"]["episode"]["value"] == analysis["pass_at_k"]["rl"]["episode"]["value"]


def test_task_ids_are_html_escaped(tmp_path):
    # base solves <x>? no (c = 0); rl does (c = 3): "<x>" is listed under "rl only".
    page = render_eval_report(tmp_path, _analysis()).read_text()
    assert "<code>&lt;x&gt;</code>" in page and "<code>a&amp;b</code>" in page
    assert "<x>" not in page and "a&b" not in page


def test_missing_data_leaves_its_plot_out_and_says_so(tmp_path):
    render_eval_report(tmp_path, _analysis())
    assert (tmp_path / "entropy.png").exists()
    # A second render without entropies removes the stale plot and does not link it.
    page = render_eval_report(tmp_path, _analysis(with_entropy=False)).read_text()
    assert not (tmp_path / "entropy.png").exists()
    assert 'src="entropy.png"' not in page and "(no data to plot)" in page
    assert (tmp_path / "pass_at_k.png").exists()


def test_summary_table_shows_each_checkpoint_and_the_comparison():
    analysis = _analysis()
    text = summary_table(analysis)
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["checkpoint", "pass@1"]
    base_row = next(line for line in lines if line.startswith("base "))
    # base pass@1 = mean of c/8 over the tasks = (0 + 2 + 1 + 0 + 5 + 8) / 48 = 0.333.
    assert base_row.split()[1] == "0.333"
    assert any(line.startswith("rl vs base: crossover") for line in lines)
    # Solvable counts: base solves a&b, t2, t4, t5; rl solves <x>, t2, t4, t5.
    assert "base only 1, rl only 1, both 3, neither 1" in text

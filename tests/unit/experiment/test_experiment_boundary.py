"""The boundary recipe's numbers come from each run's eval.json (the `outrider eval` after
training); hand-built files, expected values worked out by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from outrider.experiment.results import boundary_summary, read_boundary


def _eval_json(run_dir: Path, base_curve, final_curve, k, base_only, final_only, ppl_final) -> None:
    folder = run_dir / "eval"
    folder.mkdir(parents=True)
    ks = [1, 2, 4, 8]
    analysis = {
        "grid": {"ks": ks, "k_max": 8},
        "tasks": [f"t{i}" for i in range(10)],
        "pass_at_k": {"base": {"episode": {"value": base_curve}}, "final": {"episode": {"value": final_curve}}},
        "comparisons": {"final": {
            "base": "base",
            "crossover": {"leader_at_1": "final", "k": k, "note": f"base catches up with final at k={k}" if k else "none in 1..8"},
            "solvable": {"base_only": {"count": base_only}, "other_only": {"count": final_only},
                         "both": {"count": 6}, "neither": {"count": 4 - base_only - final_only}},
        }},
        "perplexity": {"per_checkpoint": {"base": {"median": 3.0}, "final": {"median": ppl_final}}},
    }
    (folder / "eval.json").write_text(json.dumps(analysis))


def test_a_runs_boundary_is_read_from_its_eval_json(tmp_path):
    assert read_boundary(tmp_path) is None  # no boundary evaluation: nothing invented
    _eval_json(tmp_path, [0.2, 0.35, 0.5, 0.6], [0.4, 0.45, 0.5, 0.55], 4, 2, 1, 1.5)
    b = read_boundary(tmp_path)
    assert b["k_max"] == 8 and b["tasks"] == 10 and b["crossover_k"] == 4 and b["leader_at_1"] == "final"
    assert b["pass_at_k"]["base"] == {"1": 0.2, "2": 0.35, "4": 0.5, "8": 0.6}  # keyed like experiment.json
    assert b["solvable"] == {"base_only": 2, "other_only": 1, "both": 6, "neither": 1}
    assert b["base_ppl_median"] == {"base": 3.0, "trained": 1.5}


def test_the_summary_over_seeds(tmp_path):
    runs = []
    for seed, (k, ppl) in enumerate([(4, 1.5), (2, 2.5), (None, 2.0)]):
        _eval_json(tmp_path / str(seed), [0.2, 0.35, 0.5, 0.6], [0.4 + 0.1 * seed, 0.45, 0.5, 0.55], k, seed, 1, ppl)
        runs.append(read_boundary(tmp_path / str(seed)))
    rows = boundary_summary(runs)
    # Crossover k: the mean over the two seeds that have one, (4 + 2) / 2 = 3; t-interval with n = 2:
    # s = √2, half = t_0.975,1 · s/√2 = 12.706.
    cross = rows["boundary: crossover k (seeds with one)"]
    assert cross["mean"] == 3.0 and cross["n"] == 2 and cross["half"] == pytest.approx(12.7062, rel=1e-4)
    assert rows["boundary: seeds with a crossover"]["mean"] == pytest.approx(2 / 3)
    # pass@1 trained: 0.4, 0.5, 0.6 -> mean 0.5; base-only tasks 0, 1, 2 -> mean 1.
    assert rows["boundary: pass@1 trained"]["mean"] == pytest.approx(0.5)
    assert rows["boundary: pass@8 base"]["mean"] == pytest.approx(0.6) and rows["boundary: pass@8 base"]["half"] == 0
    assert rows["boundary: tasks solved by base only"]["mean"] == pytest.approx(1.0)
    assert rows["boundary: base-model ppl of trained solutions (median)"]["mean"] == pytest.approx(2.0)
    assert math.isclose(rows["boundary: tasks solved by trained only"]["mean"], 1.0)

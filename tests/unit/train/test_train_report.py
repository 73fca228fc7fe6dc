"""The run report: before/after pass@1 with its sampling error, and the run on its wall clock."""

from __future__ import annotations

import json

import pytest

from outrider.train.report import pass1_change, render_report, summary_rows, wall_clock_points


def _eval(pass1: float, tasks: int = 4, samples: int = 4, version: int = 0) -> dict:
    return {
        "pass_at_k": {"1": pass1, "4": 0.75},
        "first_try_pass_at_k": {"1": pass1, "4": 0.5},
        "tasks": tasks,
        "samples": samples,
        "policy_version": version,
    }


def test_pass1_change_and_its_standard_error_by_hand():
    # before 0.25 over 16 episodes: se = sqrt(0.25 * 0.75 / 16) = 0.108253
    # after  0.50 over 16 episodes: se = sqrt(0.5 * 0.5 / 16)   = 0.125
    # difference 0.25 with se = sqrt(0.108253² + 0.125²) = 0.165359
    change, error = pass1_change(_eval(0.25), _eval(0.5))
    assert change == pytest.approx(0.25)
    assert error == pytest.approx(0.165359, abs=1e-6)


def test_the_summary_table_reports_the_change_with_its_error():
    rows = dict(summary_rows([{"step": 1, "reward_mean": 0.1, "entropy": 2.0, "trajectories": 8}], _eval(0.25), _eval(0.5, version=8)))
    assert rows["held-out pass@1 change (after − before)"].startswith("+0.250 ± 0.165")
    assert rows["held-out (after, v8)"].startswith("pass@1 0.500")


def test_no_change_row_without_both_evaluations():
    rows = dict(summary_rows([], _eval(0.25), None))
    assert "held-out pass@1 change (after − before)" not in rows


def test_the_wall_clock_starts_when_the_evaluation_before_training_ends():
    # before ended at t = 1000 s; steps at 1060 s and 1180 s; after ended at 1240 s.
    # Minutes since 1000 s: steps 1.0 and 3.0, after 4.0. Standard errors by hand:
    # before 0.25 of 16: sqrt(0.25 * 0.75 / 16) = 0.108253; after 0.5 of 16: 0.125.
    before, after = {**_eval(0.25), "finished_at": 1000.0}, {**_eval(0.5), "finished_at": 1240.0}
    records = [{"step": 1, "time": 1060.0, "solved_rate": 0.2}, {"step": 2, "time": 1180.0, "solved_rate": 0.6}]
    points = wall_clock_points(records, before, after)
    assert points["train_metric"] == "solved_rate"
    assert points["train"] == [(pytest.approx(1.0), 0.2), (pytest.approx(3.0), 0.6)]
    (t0, p0, e0), (t1, p1, e1) = points["held_out"]
    assert (t0, p0, t1, p1) == (0.0, 0.25, pytest.approx(4.0), 0.5)
    assert (e0, e1) == (pytest.approx(0.108253, abs=1e-6), pytest.approx(0.125))


def test_without_timestamps_the_clock_starts_one_step_before_the_first_record():
    # An older run: evaluations without finished_at. The first step took 30 s and ended
    # at 530 s, so training started at 500 s; the evaluation after sits at the last step (620 s).
    records = [{"step": 1, "time": 530.0, "step_seconds": 30.0, "reward_mean": 0.1},
               {"step": 2, "time": 620.0, "step_seconds": 90.0, "reward_mean": 0.3}]
    points = wall_clock_points(records, _eval(0.25), _eval(0.5))
    assert points["train_metric"] == "reward_mean"
    assert points["train"] == [(pytest.approx(0.5), 0.1), (pytest.approx(2.0), 0.3)]
    assert [t for t, _, _ in points["held_out"]] == [0.0, pytest.approx(2.0)]


def test_the_report_shows_the_wall_clock_curve(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(
        '{"step": 1, "time": 1060.0, "solved_rate": 0.2}\n{"step": 2, "time": 1180.0, "solved_rate": 0.6}\n')
    (tmp_path / "eval_before.json").write_text(json.dumps({**_eval(0.25), "finished_at": 1000.0}))
    (tmp_path / "eval_after.json").write_text(json.dumps({**_eval(0.5), "finished_at": 1240.0}))
    page = render_report(tmp_path).read_text()
    assert '<img src="wall_clock.png"' in page
    assert (tmp_path / "report" / "wall_clock.png").stat().st_size > 1000

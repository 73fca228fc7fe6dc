"""The run report: before/after pass@1 with its sampling error, and the run on its wall clock."""

from __future__ import annotations

import json

import pytest

from outrider.train.report import config_rows, pass1_change, render_report, summary_rows, timing_rows, wall_clock_points


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


def test_the_settings_a_reader_compares_runs_by():
    run = {"seed": 3, "learner": {"model": "m", "groups_per_step": 5, "max_steps": 10, "optimizer": {"lr": 5e-5},
                                  "algorithm": {"advantage": {"name": "grpo"}, "policy_loss": {"name": "ppo_clip", "params": {"clip_high": 0.28}},
                                                "aggregation": {"name": "token_mean"}, "transforms": [{"name": "clip_cov"}]}},
           "rollout": {"envs": ["math"], "group_size": 8, "max_turns": 3, "sampling": {"temperature": 1.0, "max_tokens": 64}}}
    rows = dict(config_rows(run))
    assert rows["algorithm"] == "advantage grpo, loss ppo_clip (clip_high=0.28), aggregation token_mean, transforms clip_cov"
    assert rows["batch"] == "5 groups × 8 episodes per step, 10 steps"
    assert rows["sampling"] == "temperature 1.0, max 64 tokens per turn, up to 3 turns"
    assert rows["seed"] == "3"


def test_where_a_steps_time_went_by_hand():
    # Step ends at 100, 160, 210 s: walls 60 and 50, mean 55. Steps 2 and 3 took 40 and 30 s
    # in the learner (mean 35) of which sync 1 and 3 (mean 2) and checkpoint 5 and 7 (mean 6):
    # compute 35 - 2 - 6 = 27; waiting 55 - 35 = 20.
    records = [{"step": 1, "time": 100.0, "step_seconds": 80.0},
               {"step": 2, "time": 160.0, "step_seconds": 40.0, "sync/seconds": 1.0, "time/checkpoint_seconds": 5.0},
               {"step": 3, "time": 210.0, "step_seconds": 30.0, "sync/seconds": 3.0, "time/checkpoint_seconds": 7.0}]
    rows = dict(timing_rows(records))
    assert rows["steps 2 onwards: wall time per step"] == "55.0 s (1.8 min from the end of step 1 to the end of step 3)"
    assert (rows["  learner compute"], rows["  weight sync"], rows["  checkpoint"], rows["  waiting for rollouts"]) == (
        "27.0 s", "2.0 s", "6.0 s", "20.0 s")


def test_the_report_shows_the_first_and_last_steps_samples_escaped(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "time": 10.0}\n{"step": 2, "time": 20.0}\n{"step": 3, "time": 30.0}\n')
    lines = [{"step": s, "reward": r, "solved": r > 0, "task_id": "math/1", "prompt": f"p{s}", "completion": f"<b>c{s}</b>"}
             for s, r in ((1, -0.6), (2, 0.3), (3, 1.0))]
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    page = render_report(tmp_path).read_text()
    assert "&lt;b&gt;c1&lt;/b&gt;" in page and "&lt;b&gt;c3&lt;/b&gt;" in page and "c2" not in page
    assert "reward +1.000, solved" in page and "reward -0.600, not solved" in page


def test_records_without_a_time_give_no_clock_and_no_timing(tmp_path):
    records = [{"step": 1, "reward_mean": 0.5}]
    assert wall_clock_points(records, None, None) == {"train": [], "train_metric": None, "held_out": []}
    assert timing_rows(records + [{"step": 2, "reward_mean": 0.6}]) == []
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "reward_mean": 0.5}\n')
    assert "fewer than two steps" in render_report(tmp_path).read_text()

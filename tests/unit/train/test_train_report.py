"""The run report's summary table: before/after pass@1 with its sampling error."""

from __future__ import annotations

import pytest

from outrider.train.report import pass1_change, summary_rows


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

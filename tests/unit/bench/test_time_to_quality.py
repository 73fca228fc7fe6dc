"""bench/time_to_quality.py: time points, the checkpoint a system had at each, pass@1 ± SE,
and the workload's held-out set. Expected values derived by hand."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import time_to_quality as ttq  # noqa: E402
import vs_trl_workload as workload  # noqa: E402

CHECKPOINTS = [
    {"step": 1, "elapsed_s": 130.0, "path": "/r/step-1"},
    {"step": 2, "elapsed_s": 190.5, "path": "/r/step-2"},
    {"step": 3, "elapsed_s": 250.0, "path": "/r/step-3"},
]


def test_time_points_end_at_the_budget():
    assert ttq.time_points(600.0, 4) == [150.0, 300.0, 450.0, 600.0]
    assert ttq.time_points(90.0, 1) == [90.0]


def test_newest_checkpoint_that_existed_at_a_time():
    assert ttq.newest_at(CHECKPOINTS, 129.9) is None
    assert ttq.newest_at(CHECKPOINTS, 130.0)["step"] == 1  # a model saved exactly then counts
    assert ttq.newest_at(CHECKPOINTS, 200.0)["step"] == 2
    assert ttq.newest_at(list(reversed(CHECKPOINTS)), 1e9)["step"] == 3  # by step, not list order


def test_eval_plan_serves_the_base_before_a_systems_first_step():
    plan = ttq.eval_plan({"trl": CHECKPOINTS}, [100.0, 200.0, 300.0])
    rows = plan["trl"]
    assert [r["checkpoint"] for r in rows] == ["base", "trl-step-2", "trl-step-3"]
    assert [r["step"] for r in rows] == [0, 2, 3]
    assert rows[0]["source"] is None and rows[1]["source"] == "/r/step-2"
    assert rows[2]["model_elapsed_s"] == 250.0


def test_pass_at_1_and_its_standard_error_by_hand():
    # Per-problem rates 1/4, 3/4, 2/4, 0/4: mean 0.375; deviations −.125, .375, .125, −.375,
    # squares sum 0.3125, sample variance 0.3125 / 3, SE = sqrt(0.3125 / 3) / 2 = 0.16137...
    mean, se = ttq.pass_at_1([(1, 4), (3, 4), (2, 4), (0, 4)])
    assert mean == pytest.approx(0.375, abs=1e-12)
    assert se == pytest.approx(math.sqrt(0.3125 / 3) / 2, abs=1e-12)
    assert se == pytest.approx(0.161374, abs=1e-6)
    # Problems with different sample counts weigh equally: (1/2 + 1/4) / 2.
    assert ttq.pass_at_1([(1, 2), (1, 4)])[0] == pytest.approx(0.375)
    with pytest.raises(ValueError, match="at least 2 problems"):
        ttq.pass_at_1([(1, 4)])


def test_held_out_problems_never_appear_in_the_training_set():
    work = workload.TIME_TO_QUALITY["full"]
    test = [(p.a, p.b) for p in work.test_problems()]
    train = [(p.a, p.b) for p in work.problems()]
    assert len(test) == len(set(test)) == work.test_prompts == 64  # distinct
    assert len(train) == work.num_prompts
    # Operands below 13 make only 169 sums: without the exclusion, 1,024 draws would pose nearly all of them.
    assert not set(test) & set(train)
    assert set(train) | set(test) <= {(a, b) for a in range(13) for b in range(13)}
    assert len(set(train)) == 169 - 64  # every other sum is trained on


def test_excluding_nothing_draws_the_plain_stream():
    rng = __import__("random").Random(7)
    expected = [(rng.randrange(50), rng.randrange(50)) for _ in range(20)]
    assert [(p.a, p.b) for p in workload.problems(20, 7)] == expected
    drawn = workload.problems(20, 7, exclude=frozenset({expected[0]}))
    assert expected[0] not in [(p.a, p.b) for p in drawn] and len(drawn) == 20


def test_impossible_problem_sets_are_refused():
    with pytest.raises(ValueError, match="only 4"):
        workload.distinct_problems(5, 0, operand_limit=2)
    with pytest.raises(ValueError, match="every one of the 4"):
        workload.problems(1, 0, operand_limit=2, exclude=frozenset({(0, 0), (0, 1), (1, 0), (1, 1)}))

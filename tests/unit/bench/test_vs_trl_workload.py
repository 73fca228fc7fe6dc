"""bench/vs_trl_workload.py: the answer rule, the reward and the prompt set both systems share."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import pytest

# bench/ is a folder of scripts, not a package: its modules import each other by bare name.
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import vs_trl_workload as workload  # noqa: E402


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("42", Decimal(42)),
        ("  42\n", Decimal(42)),
        ("42.", Decimal(42)),  # sentence full stop, not a decimal part
        ("42.0", Decimal(42)),
        ("The answer is 42.", Decimal(42)),
        ("17 + 25 = 42", Decimal(42)),  # the last number: the result, not an operand
        ("42, I think. Or 43", Decimal(43)),
        ("-3", Decimal(-3)),
        ("1,234", Decimal(234)),  # no thousands separators in this task
        ("forty-two", None),
        ("", None),
    ],
)
def test_parse_answer_takes_the_last_number(completion, expected):
    assert workload.parse_answer(completion) == expected


@pytest.mark.parametrize(
    ("completion", "answer", "value"),
    [
        ("42", 42, 1.0),
        ("The sum is 42.0", 42, 1.0),
        ("17 + 25 = 32", 42, 0.0),  # what SmolLM2 says out of the box: wrong
        ("42 + 1", 42, 0.0),
        ("I don't know", 42, 0.0),
        ("0", 0, 1.0),
    ],
)
def test_reward_is_one_exactly_for_the_right_answer(completion, answer, value):
    assert workload.reward(completion, answer) == value


def test_problem_prompt_text_is_the_issue_wording():
    assert workload.Problem(17, 25).prompt == "What is 17 + 25? Answer with just the number."
    assert workload.Problem(17, 25).answer == 42


def test_prompt_set_is_seeded_and_within_bounds():
    first = workload.problems(200, seed=0)
    assert first == workload.problems(200, seed=0)
    assert first != workload.problems(200, seed=1)
    assert workload.problems(10, seed=0) == first[:10]  # a larger set extends a smaller one
    assert all(0 <= p.a < 50 and 0 <= p.b < 50 for p in first)
    assert len({(p.a, p.b) for p in first}) > 150  # a varied set, not one repeated problem


def test_workload_round_trips_through_a_dict():
    for work in workload.SCALES.values():
        assert workload.Workload.from_dict(work.to_dict()) == work
    full = workload.SCALES["full"]
    assert (full.model, full.group_size, full.prompts_per_step, full.max_new_tokens) == ("smollm2-135m-instruct", 8, 8, 128)
    assert (full.temperature, full.lr, full.beta, full.dtype) == (1.0, 1e-6, 0.0, "fp32")

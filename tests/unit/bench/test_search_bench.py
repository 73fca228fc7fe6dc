"""bench/search.py's simulated proposer: right steps are the PRM data set's, wrong ones carry on."""

from __future__ import annotations

import random
import sys
from pathlib import Path

# bench/ is a folder of scripts, not a package: its modules import each other by bare name.
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import search as bench  # noqa: E402

from outrider.rollout.search import sample  # noqa: E402

OPS = [(13, "+", 6), (19, "-", 2), (17, "+", 8), (25, "-", 9)]  # "Compute (((13 + 6) - 2) + 8) - 9."


def test_a_solver_that_is_always_right_writes_the_solution_and_its_tokens_are_bytes():
    result = sample(bench.NoisySolver(OPS, 1.0, random.Random(0)), samples=1, max_steps=8, token_budget=1000)
    assert result.best.text == "13 + 6 = 19\n\n19 - 2 = 17\n\n17 + 8 = 25\n\n25 - 9 = 16"
    assert bench.answer(result.best) == 16 == int(bench.solution(OPS)[-1].split("=")[1])
    # 13 bytes per step with its delimiter, 11 for the last: 3·13 + 11 = 50.
    assert result.compute.generated_tokens == 50 == len(result.best.token_ids)


def test_a_wrong_step_is_carried_on_and_a_cut_answer_has_none():
    solver = bench.NoisySolver(OPS, 0.0, random.Random(0))
    (first,) = solver.propose([()], 1, 100)[0]
    written = int(first.text.split("=")[1])
    assert written != 19 and 10 <= written <= 99
    (second,) = solver.propose([(first,)], 1, 100)[0]
    assert second.text.startswith(f"{written} - 2 = ")
    cut = sample(bench.NoisySolver(OPS, 1.0, random.Random(0)), samples=1, max_steps=8, token_budget=40)
    assert not cut.best.final and bench.answer(cut.best) is None

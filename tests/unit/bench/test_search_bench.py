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


def test_an_lm_step_is_put_in_the_prm_format_and_anything_else_is_kept_as_written():
    # Spacing and a full stop after the result go; the delimiter the step stopped at stays.
    assert bench.prm_step("16+3 =19.\n\n") == "16 + 3 = 19\n\n"
    assert bench.prm_step(" 25 - 9 = 16") == "25 - 9 = 16"
    assert bench.parse_step("25 - 9 = 16") == (25, "-", 9, 16)
    # Two operations in one step, or words, are not one operation: the PRM sees them as written.
    assert bench.parse_step("16 + 3 + 4 = 23") is None
    assert bench.prm_step("16 + 3 + 4 = 23\n\n") == "16 + 3 + 4 = 23\n\n"
    assert bench.prm_step("So the answer is 23.") == "So the answer is 23."


def test_the_right_next_step_carries_on_from_the_value_written():
    assert bench.right_step(OPS, []) == "13 + 6 = 19"
    # 13 + 6 written as 20 (wrong): the right second step is 20 - 2 = 18, as NoisySolver carries on.
    assert bench.right_step(OPS, ["13 + 6 = 20\n\n"]) == "20 - 2 = 18"
    assert bench.right_step(OPS, ["13 + 6 = 19\n\n", "19 - 2 = 17\n\n", "17 + 8 = 25\n\n"]) == "25 - 9 = 16"
    # After the last operation, or after a step that is not one operation, no step is right.
    assert bench.right_step(OPS, [s for s in bench.solution(OPS)]) is None
    assert bench.right_step(OPS, ["I add 6 to 13.\n\n"]) is None


class TableProposer:
    """The proposals an LM made, by prefix length (the search's Proposer seam)."""

    def __init__(self, table):
        self.table = table

    def propose(self, prefixes, k, max_tokens):
        return [[bench.Step((1,) * len(t), t, f) for t, f in self.table[len(p)][:k]] for p in prefixes]


def test_the_lm_proposer_rewrites_each_step_and_counts_the_right_ones():
    table = {0: [("13+6=19.\n\n", False), ("13 + 6 = 20\n\n", False)], 1: [("19 - 2 = 17", True), ("20 - 2 = 18", True)]}
    proposer = bench.LMProposer(TableProposer(table), OPS)
    first = proposer.propose([()], 2, 100)[0]
    assert [s.text for s in first] == ["13 + 6 = 19\n\n", "13 + 6 = 20\n\n"]
    assert first[0].token_ids == (1,) * 10  # the model's tokens, not the rewritten text's
    assert (proposer.right, proposer.proposed) == (1, 2)
    # After "13 + 6 = 20" the right step is 20 - 2 = 18 (the second proposal), after "= 19" it is 19 - 2 = 17.
    proposer.propose([(first[0],), (first[1],)], 2, 100)
    assert (proposer.right, proposer.proposed) == (1 + 1 + 1, 2 + 4)

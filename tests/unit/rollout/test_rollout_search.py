"""Beam search and MCTS over steps against hand-built proposal tables and PRM values.

The constructed task: "compute 6*7". From the prompt the policy proposes, in this order,
"guess" (a shortcut) and "6*7"; after "guess" it can only write "=41"; after "6*7" it
writes "=41" first and "=42" second. Each character is one token. The PRM prefers the
right steps:

    prefix        value        prefix         value
    guess         0.2          guess=41       0.3
    6*7           0.7          6*7=41         0.1
                               6*7=42         0.9

Plain sampling (the first proposal each time) writes "guess=41": wrong. The searches
below find "6*7=42", the step the PRM prefers, by the paths derived in each test.
"""

from __future__ import annotations

import math
from collections import defaultdict

import pytest

from outrider.rollout.search import Step, beam_search, mcts, sample, search

TABLE = {
    (): ["guess", "6*7"],
    ("guess",): ["=41"],
    ("6*7",): ["=41", "=42"],
}
VALUES = {("guess",): 0.2, ("6*7",): 0.7, ("guess", "=41"): 0.3, ("6*7", "=41"): 0.1, ("6*7", "=42"): 0.9}
FINAL = {"=41", "=42"}


class TableProposer:
    """Proposes a prefix's options in turn (a cursor per prefix, so k > options repeats
    them); a step longer than max_tokens is cut there (a length stop: not final).
    Options missing from the table: `default` (a long step)."""

    def __init__(self, table, default: str | None = None):
        self.table, self.default = table, default
        self.cursor: dict[tuple, int] = defaultdict(int)
        self.calls: list[tuple[list[tuple[str, ...]], int, int]] = []

    def propose(self, prefixes, k, max_tokens):
        self.calls.append(([texts(p) for p in prefixes], k, max_tokens))
        out = []
        for prefix in prefixes:
            options = self.table.get(texts(prefix), [self.default])
            steps = []
            for _ in range(k):
                text = options[self.cursor[texts(prefix)] % len(options)]
                self.cursor[texts(prefix)] += 1
                cut = text[:max_tokens]
                steps.append(Step(tuple(ord(ch) for ch in cut), cut, final=cut == text and text in FINAL))
            out.append(steps)
        return out


class TableScorer:
    def __init__(self, values):
        self.values = values
        self.calls: list[list[tuple[str, ...]]] = []

    def score(self, prefixes):
        self.calls.append([texts(p) for p in prefixes])
        return [self.values.get(texts(p), 0.0) for p in prefixes]


def texts(prefix) -> tuple[str, ...]:
    return tuple(step.text for step in prefix)


def test_sampling_takes_the_first_proposals_and_answers_wrong():
    proposer = TableProposer(TABLE)
    result = sample(proposer, max_steps=4, token_budget=100)
    assert texts(result.best.steps) == ("guess", "=41") and result.best.final
    # "guess" (5 tokens) + "=41" (3): two calls of one proposal each, no PRM.
    assert result.compute.as_dict() == {"generated_tokens": 8, "policy_calls": 2, "prm_calls": 0, "proposals": 2, "prefixes_scored": 0}
    assert math.isnan(result.best.value)


def test_best_of_two_samples_at_the_beam_s_tokens_still_misses_the_answer():
    # Two chains: the root's cursor gives "guess" then "6*7"; both then write their first
    # option "=41". The PRM picks guess=41 (0.3 > 0.1): wrong, for 5+3+3+3 = 14 tokens,
    # the same as the width-1 beam below spends.
    result = sample(TableProposer(TABLE), TableScorer(VALUES), samples=2, max_steps=4, token_budget=100)
    assert [texts(t.steps) for t in result.trajectories] == [("guess", "=41"), ("6*7", "=41")]
    assert [t.value for t in result.trajectories] == [0.3, 0.1]
    assert texts(result.best.steps) == ("guess", "=41")
    assert result.compute.generated_tokens == 14 and result.compute.policy_calls == 2 and result.compute.prm_calls == 1


def test_beam_of_width_one_finds_the_step_the_prm_prefers():
    # Depth 0: the root gets W·E = 2 proposals, guess (0.2) and 6*7 (0.7): keep 6*7.
    # Depth 1: 6*7 gets E = 2: =41 (0.1) and =42 (0.9): keep 6*7=42, finished: stop.
    proposer, scorer = TableProposer(TABLE), TableScorer(VALUES)
    result = beam_search(proposer, scorer, width=1, expansions=2, max_steps=4, token_budget=100)
    assert texts(result.best.steps) == ("6*7", "=42") and result.best.final and result.best.value == 0.9
    assert result.best.text == "6*7=42" and result.best.token_ids == [ord(c) for c in "6*7=42"]
    assert [texts(t.steps) for t in result.trajectories] == [("6*7", "=42")]
    assert [c[:2] for c in proposer.calls] == [([()], 2), ([("6*7",)], 2)]
    assert scorer.calls == [[("guess",), ("6*7",)], [("6*7", "=41"), ("6*7", "=42")]]
    # Tokens: guess 5 + 6*7 3 + =41 3 + =42 3 = 14.
    assert result.compute.as_dict() == {"generated_tokens": 14, "policy_calls": 2, "prm_calls": 2, "proposals": 4, "prefixes_scored": 4}


def test_beam_of_width_two_keeps_finished_beams_in_the_ranking():
    # Depth 0: 4 proposals from the root, guess, 6*7, guess, 6*7 (the duplicates are
    # scored once): beams [6*7 0.7, guess 0.2]. Depth 1: 6*7 → =41, =42; guess → =41, =41
    # (one kept): children 6*7=41 0.1, 6*7=42 0.9, guess=41 0.3; best two: 6*7=42, guess=41.
    proposer, scorer = TableProposer(TABLE), TableScorer(VALUES)
    result = beam_search(proposer, scorer, width=2, expansions=2, max_steps=4, token_budget=100)
    assert [(texts(t.steps), t.value) for t in result.trajectories] == [(("6*7", "=42"), 0.9), (("guess", "=41"), 0.3)]
    assert texts(result.best.steps) == ("6*7", "=42")
    assert scorer.calls == [[("guess",), ("6*7",)], [("6*7", "=41"), ("6*7", "=42"), ("guess", "=41")]]
    # Tokens: 2·(5 + 3) at depth 0, 4·3 at depth 1: 28; duplicates count, they were generated.
    assert result.compute.as_dict() == {"generated_tokens": 28, "policy_calls": 2, "prm_calls": 2, "proposals": 8, "prefixes_scored": 5}


def test_mcts_exploits_the_prm_values_with_a_small_ucb_constant():
    # sim 1: expand the root: guess 0.2, 6*7 0.7 (N = 1 each); back up their mean 0.45.
    # sim 2: N(root) = 1, ln 1 = 0: UCB = Q, pick 6*7 (0.7); expand: =41 0.1, =42 0.9; back up 0.5.
    #        6*7: N = 2, W = 1.2, Q = 0.6; root N = 2.
    # sim 3: guess 0.2 + sqrt(ln 2 / 1) = 1.033 < 6*7 0.6 + sqrt(ln 2 / 2) = 1.189; then
    #        =41 0.1 + sqrt(ln 2) = 0.933 < =42 0.9 + sqrt(ln 2) = 1.733: =42, finished, no cost.
    proposer, scorer = TableProposer(TABLE), TableScorer(VALUES)
    result = mcts(proposer, scorer, simulations=3, expansions=2, max_steps=4, token_budget=100, ucb_c=1.0, width=2)
    # Leaves: guess (0.2, unfinished), 6*7=41 (0.1), 6*7=42 (0.9): finished first, by value.
    assert [(texts(t.steps), t.value) for t in result.trajectories] == [(("6*7", "=42"), 0.9), (("6*7", "=41"), 0.1)]
    assert texts(result.best.steps) == ("6*7", "=42") and result.best.final
    assert [c[0] for c in proposer.calls] == [[()], [("6*7",)]]
    assert result.compute.as_dict() == {"generated_tokens": 14, "policy_calls": 2, "prm_calls": 2, "proposals": 4, "prefixes_scored": 4}


def test_mcts_explores_the_weaker_branch_with_a_large_ucb_constant():
    # sim 3 with c = 2: guess 0.2 + 2·0.8326 = 1.865 > 6*7 0.6 + 2·0.5887 = 1.777, so guess
    # is expanded: =41 twice, kept once (0.3). Three expansions, 8 + 6 + 6 = 20 tokens.
    proposer, scorer = TableProposer(TABLE), TableScorer(VALUES)
    result = mcts(proposer, scorer, simulations=3, expansions=2, max_steps=4, token_budget=100, ucb_c=2.0, width=3)
    assert [c[0] for c in proposer.calls] == [[()], [("6*7",)], [("guess",)]]
    assert [(texts(t.steps), t.value) for t in result.trajectories] == [
        (("6*7", "=42"), 0.9), (("guess", "=41"), 0.3), (("6*7", "=41"), 0.1),
    ]
    assert result.compute.as_dict() == {"generated_tokens": 20, "policy_calls": 3, "prm_calls": 3, "proposals": 6, "prefixes_scored": 5}


def test_beam_search_never_exceeds_the_token_budget():
    # Every step the policy would write is 10 tokens; budget 25, W = 1, E = 2.
    # Depth 0: 2 proposals, each at most ⌊25/2⌋ = 12: 2·10 = 20. Depth 1: at most ⌊5/2⌋ = 2
    # each: 2·2 = 4 (cut: not finished). Depth 2: ⌊1/2⌋ = 0: stop, at 24 ≤ 25 tokens.
    proposer = TableProposer({}, default="aaaaaaaaaa")
    result = beam_search(proposer, TableScorer({}), width=1, expansions=2, max_steps=10, token_budget=25)
    assert [c[2] for c in proposer.calls] == [12, 2]
    assert result.compute.generated_tokens == 24
    assert [len(t.token_ids) for t in result.trajectories] == [12]  # 10 + 2
    assert not result.best.final


def test_mcts_never_exceeds_the_token_budget():
    # Expansions of E = 2 proposals: at most ⌊25/2⌋ = 12 each (20 used), then ⌊5/2⌋ = 2
    # (24 used), then ⌊1/2⌋ = 0: the search stops before its 10 simulations.
    proposer = TableProposer({}, default="bbbbbbbbbb")
    result = mcts(proposer, TableScorer({}), simulations=10, expansions=2, max_steps=10, token_budget=25, ucb_c=1.0, width=2)
    assert [c[2] for c in proposer.calls] == [12, 2]
    assert result.compute.generated_tokens == 24 and result.compute.policy_calls == 2


def test_sampling_shares_the_budget_between_its_chains():
    # 3 chains of 10-token steps, budget 40: ⌊40/3⌋ = 13 each (30 used), ⌊10/3⌋ = 3 each
    # (39 used), then ⌊1/3⌋ = 0.
    proposer = TableProposer({}, default="cccccccccc")
    result = sample(proposer, samples=3, max_steps=10, token_budget=40)
    assert [c[2] for c in proposer.calls] == [13, 3]
    assert result.compute.generated_tokens == 39 and [len(t.token_ids) for t in result.trajectories] == [13, 13, 13]


def test_max_steps_bounds_the_depth():
    proposer = TableProposer({}, default="d")
    result = beam_search(proposer, TableScorer({}), width=2, expansions=1, max_steps=3, token_budget=1000)
    assert all(len(t.steps) == 3 for t in result.trajectories) and len(proposer.calls) == 3


class Greedy:
    """A proposer that ignores max_tokens: a broken service."""

    def propose(self, prefixes, k, max_tokens):
        return [[Step(tuple(range(max_tokens + 1)), "x")] for _ in prefixes]


def test_a_proposer_over_its_token_limit_and_bad_parameters_are_errors():
    with pytest.raises(ValueError, match="a step of 6 tokens, more than max_tokens=5"):
        beam_search(Greedy(), TableScorer({}), width=1, expansions=2, max_steps=2, token_budget=10)
    with pytest.raises(ValueError, match="token_budget=3 is too small for the first 4 proposals"):
        beam_search(TableProposer(TABLE), TableScorer(VALUES), width=2, expansions=2, max_steps=2, token_budget=3)
    with pytest.raises(ValueError, match="width must be >= 1"):
        beam_search(TableProposer(TABLE), TableScorer(VALUES), width=0, expansions=2, max_steps=2, token_budget=10)
    with pytest.raises(ValueError, match="unknown search mode 'dfs'; valid: beam, mcts"):
        search("dfs", TableProposer(TABLE), TableScorer(VALUES), width=1, expansions=1, max_steps=1, token_budget=9, ucb_c=1, simulations=1)

"""Crossover k and solvable sets on constructed examples with hand-derived answers."""

from __future__ import annotations

import numpy as np
import pytest

from outrider.eval import stats
from outrider.eval.analysis import analyze
from outrider.eval.records import TaskRecord


def _records(name: str, correct: dict[str, int], n: int = 4) -> dict[str, TaskRecord]:
    return {t: TaskRecord(name, t, "math", n, c, 0, 0) for t, c in correct.items()}


def _analyze(base: dict[str, int], rl: dict[str, int], n: int = 4, **kw) -> dict:
    return analyze({"base": _records("base", base, n), "rl": _records("rl", rl, n)}, "base", n, **kw)


# With n = 4 samples, the grid is k = 1, 2, 4 and per task (1 − C(4−c, k)/C(4, k)):
#   c = 0: 0, 0, 0     c = 1: 1/4, 1/2, 1     c = 2: 1/2, 5/6, 1     c = 4: 1, 1, 1
# (c = 1, k = 2: 1 − C(3,2)/C(4,2) = 1 − 3/6; c = 2, k = 2: 1 − C(2,2)/C(4,2) = 1 − 1/6).


def test_rl_leads_at_1_and_the_base_ties_at_2():
    # base: four tasks with c = 1 → 1/4, 1/2, 1.   rl: c = 4, 4, 0, 0 → 1/2 at every k.
    # k = 1: rl 1/2 > base 1/4 (rl leads); k = 2: base 1/2 ≥ rl 1/2 → crossover 2.
    out = _analyze({"a": 1, "b": 1, "c": 1, "d": 1}, {"a": 4, "b": 4, "c": 0, "d": 0})
    cross = out["comparisons"]["rl"]["crossover"]
    assert (cross["leader_at_1"], cross["trailer"], cross["k"]) == ("rl", "base", 2)
    np.testing.assert_allclose(out["pass_at_k"]["base"]["episode"]["value"], [0.25, 0.5, 1.0], atol=1e-12)
    np.testing.assert_allclose(out["comparisons"]["rl"]["difference"]["value"], [0.25, 0.0, -0.5], atol=1e-12)


def test_the_base_overtakes_only_at_the_largest_k():
    # rl: c = 4, 4, 4, 0 → 3/4 at every k. k = 2: base 1/2 < 3/4; k = 4: base 1 ≥ 3/4 → 4.
    cross = _analyze({"a": 1, "b": 1, "c": 1, "d": 1}, {"a": 4, "b": 4, "c": 4, "d": 0})["comparisons"]["rl"]["crossover"]
    assert cross["k"] == 4 and cross["leader_at_1"] == "rl"


def test_no_crossover_in_1_to_n():
    # base: c = 1, 1, 1, 0 → 3/16, 3/8, 3/4.   rl: c = 2 on all → 1/2, 5/6, 1: rl ahead at every k.
    cross = _analyze({"a": 1, "b": 1, "c": 1, "d": 0}, {"a": 2, "b": 2, "c": 2, "d": 2})["comparisons"]["rl"]["crossover"]
    assert cross["leader_at_1"] == "rl" and cross["k"] is None
    assert "none in 1..4" in cross["note"]


def test_the_other_way_round_base_leads_and_rl_overtakes():
    # base: c = 4, 0, 0, 0 → 1/4 at every k.   rl: c = 1, 1, 0, 0 → 1/8, 1/4, 1/2.
    # k = 1: base 1/4 > rl 1/8; k = 2: rl 1/4 ≥ base 1/4 → crossover 2, trailer rl.
    cross = _analyze({"a": 4, "b": 0, "c": 0, "d": 0}, {"a": 1, "b": 1, "c": 0, "d": 0})["comparisons"]["rl"]["crossover"]
    assert (cross["leader_at_1"], cross["trailer"], cross["k"]) == ("base", "rl", 2)


def test_tied_pass_at_1_has_no_leader():
    # base c = 2, 2 and rl c = 4, 0: both 1/2 at k = 1.
    cross = _analyze({"a": 2, "b": 2}, {"a": 4, "b": 0})["comparisons"]["rl"]["crossover"]
    assert cross["leader_at_1"] is None and cross["k"] is None


def test_crossover_bootstrap_distribution_by_hand():
    # base: c = 1 on every task → 1/4, 1/2, 1 in every resample (all tasks alike).
    # rl: c = 4 on two of four tasks, 0 on the others → s, s, s with s = the resample's
    # share of solved tasks, s = S/4, S ~ Binomial(4, 1/2). The base catches up at
    #   k = 1 iff s ≤ 1/4 (S ≤ 1): P = (1 + 4)/16       = 5/16
    #   k = 2 iff 1/4 < s ≤ 1/2 (S = 2): P = 6/16
    #   k = 4 otherwise (base reaches 1 ≥ s): P = 5/16;  never "none".
    # 90% percentile interval of that distribution: [1, 4].
    out = _analyze({"a": 1, "b": 1, "c": 1, "d": 1}, {"a": 4, "b": 4, "c": 0, "d": 0}, resamples=4000, seed=11)
    cross = out["comparisons"]["rl"]["crossover"]
    dist = cross["distribution"]
    # 4000 resamples: standard error ≤ sqrt(0.25/4000) ≈ 0.008; 0.03 is > 3.5 standard errors.
    assert dist["1"] == pytest.approx(5 / 16, abs=0.03)
    assert dist["2"] == pytest.approx(6 / 16, abs=0.03)
    assert dist["4"] == pytest.approx(5 / 16, abs=0.03)
    assert cross["none_share"] == 0.0 and cross["interval"] == [1, 4]


def test_crossover_interval_end_beyond_n_is_none():
    # The trailer never catches up in 90% of resamples → the interval's upper end is
    # "no crossover" (None), the share is reported.
    leader = np.tile([0.5, 0.6, 0.7], (100, 1))
    trailer = np.tile([0.1, 0.2, 0.3], (100, 1))
    trailer[:10, 2] = 0.7  # 10 resamples tie at k = 4
    out = stats.crossover_distribution(leader, trailer, [1, 2, 4], 0.9)
    assert out["none_share"] == pytest.approx(0.9)
    assert out["interval"] == [4, None]
    assert out["distribution"] == {"4": pytest.approx(0.1)}


def test_solvable_sets_counts_and_sorted_lists():
    # task:  q  a  m  z  b  x
    # base:  0  3  1  0  0  2   → solved a, m, x
    # rl:    4  0  1  0  0  1   → solved q, m, x
    # base only {a}; rl only {q}; both {m, x}; neither {b, z}.
    base = {"q": 0, "a": 3, "m": 1, "z": 0, "b": 0, "x": 2}
    rl = {"q": 4, "a": 0, "m": 1, "z": 0, "b": 0, "x": 1}
    out = _analyze(base, rl)
    s = out["comparisons"]["rl"]["solvable"]
    assert {k: v["count"] for k, v in s.items()} == {"base_only": 1, "other_only": 1, "both": 2, "neither": 2}
    assert s["base_only"]["tasks"] == ["a"] and s["other_only"]["tasks"] == ["q"]
    assert s["both"]["tasks"] == ["m", "x"] and s["neither"]["tasks"] == ["b", "z"]
    assert out["coverage"]["base"]["coverage"] == pytest.approx(3 / 6)
    assert out["coverage"]["rl"]["solved"] == 3 and out["coverage"]["rl"]["tasks"] == 6


def test_every_checkpoint_is_compared_with_the_base():
    recs = {name: _records(name, {"a": c, "b": 0}) for name, c in (("base", 1), ("rl", 4), ("sft", 0))}
    out = analyze(recs, "base", 4)
    assert list(out["comparisons"]) == ["rl", "sft"]
    assert out["comparisons"]["sft"]["solvable"]["base_only"]["tasks"] == ["a"]
    assert out["comparisons"]["rl"]["solvable"]["both"]["tasks"] == ["a"]


def test_checkpoints_with_different_tasks_are_an_error_naming_them():
    recs = {"base": _records("base", {"a": 1, "b": 1}), "rl": _records("rl", {"a": 1})}
    with pytest.raises(ValueError, match=r"checkpoint 'rl' covers different tasks .* missing \['b'\]"):
        analyze(recs, "base", 4)
    with pytest.raises(ValueError, match="base checkpoint 'nope' has no records"):
        analyze(recs, "nope", 4)

"""Curriculum strategies and sampler: weights, promotion, exclusion, mix, determinism, state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from outrider.config.curriculum import ExclusionConfig, LearnabilityStrategy, OrderedStrategy, UniformStrategy
from outrider.services.curriculum.strategies import Curriculum, NoTasks, learnability_weights
from outrider.services.curriculum.table import TaskInfo, TaskTable

PROBS = (0.0, 0.1, 0.5, 0.9, 1.0)


def population(per_kind: int = 100) -> tuple[list[TaskInfo], np.ndarray]:
    tasks = [TaskInfo("sim", f"p{p}-{i:03d}") for p in PROBS for i in range(per_kind)]
    return tasks, np.array([p for p in PROBS for _ in range(per_kind)])


def simulate(curriculum: Curriculum, truth: np.ndarray, rounds: int, warmup: int, seed: int = 1, n: int = 32, group: int = 8) -> np.ndarray:
    """Share of samples (after `warmup` rounds) per solve probability in PROBS."""
    rng = np.random.default_rng(seed)
    counts = np.zeros(len(PROBS))
    for r in range(rounds):
        rows = curriculum.sample(n)
        for row in rows:
            if r >= warmup:
                counts[PROBS.index(truth[row])] += 1
            curriculum.report(row, (rng.random(group) < truth[row]).astype(float).tolist())
        curriculum.after_reports(rows)
    return counts / counts.sum()


def test_learnability_weights_hand_values():
    # a = 1: p = (passes + 1) / (count + 2).
    passes, count = np.array([4, 8, 0, 0]), np.array([8, 8, 8, 0])
    # 5/10 -> 0.25; 9/10 -> 0.09; 1/10 -> 0.09; unseen 1/2 -> 0.25.
    np.testing.assert_allclose(learnability_weights(passes, count, 1.0, 0.0), [0.25, 0.09, 0.09, 0.25], rtol=0, atol=1e-15)
    # With a floor of 0.1, the 0.09s are raised to it.
    np.testing.assert_allclose(learnability_weights(passes, count, 1.0, 0.1), [0.25, 0.1, 0.1, 0.25], rtol=0, atol=1e-15)


def test_table_ring_keeps_last_window_attempts():
    table = TaskTable([TaskInfo("e", "a")], window=4)
    table.record([True, True, False], [1.0, 1.0, 0.0], 0, now=5.0)
    table.record([False, True], [0.0, 1.0], 0, now=6.0)
    # Attempts 1 1 0 0 1: the window of 4 keeps 1 0 0 1.
    record = table.export(0)
    assert record.recent == (1, 0, 0, 1)
    assert (table.recent_passes[0], table.recent_count[0]) == (2, 4)
    assert record.attempts == 5 and record.reward_sum == 3.0 and record.last_seen == 6.0


def test_learnability_concentrates_on_half_solved_tasks():
    tasks, truth = population()
    shares = simulate(Curriculum(tasks, LearnabilityStrategy(), seed=0), truth, rounds=300, warmup=100)
    uniform = simulate(Curriculum(tasks, UniformStrategy(), seed=0), truth, rounds=300, warmup=100)
    # Stationary weights with a 16-attempt window: p=0.5 -> ~0.235, p=0.1/0.9 -> ~0.1,
    # p=0/1 -> (1/18)(17/18) = 0.0525; the p=0.5 share is ~0.235/0.54 = 0.43 (uniform: 0.2).
    assert shares[2] > 0.35
    assert shares[0] < 0.15 and shares[4] < 0.15
    assert shares[2] > shares[1] and shares[2] > shares[3]
    assert abs(uniform[2] - 0.2) < 0.03  # 6400 draws: binomial sd 0.005


def test_ordered_promotes_when_level_is_passed():
    tasks = [TaskInfo("e", f"easy-{i}", 0.0) for i in range(4)] + [TaskInfo("e", f"hard-{i}", 1.0) for i in range(4)]
    c = Curriculum(tasks, OrderedStrategy(promote_at=0.75, min_attempts=16, review_weight=0.0), seed=0)
    assert c.strategy.level(0) == 0.0
    # Level 1 is locked: only easy tasks come out.
    rows = c.sample(4)
    assert {c.table.tasks[r].task_id for r in rows} == {f"easy-{i}" for i in range(4)}
    # 12 attempts at 100%: below min_attempts (16), no promotion yet.
    for row in rows[:3]:
        c.report(row, [1.0] * 4)
    c.after_reports(rows[:3])
    assert c.strategy.level(0) == 0.0
    # 4 more, 3 of them passed: 15/16 = 0.94 >= 0.75 over 16 attempts -> promoted.
    c.report(rows[3], [1.0, 1.0, 1.0, 0.0])
    c.after_reports(rows[3:])
    assert c.strategy.level(0) == 1.0
    # review_weight 0: only the hard tasks remain.
    assert {c.table.tasks[r].task_id for r in c.sample(4)} == {f"hard-{i}" for i in range(4)}


def test_ordered_does_not_promote_below_threshold():
    tasks = [TaskInfo("e", "easy", 0.0), TaskInfo("e", "hard", 1.0)]
    c = Curriculum(tasks, OrderedStrategy(promote_at=0.8, min_attempts=4), seed=0)
    c.report(0, [1.0, 1.0, 1.0, 0.0])  # 3/4 = 0.75 < 0.8
    c.after_reports([0])
    assert c.strategy.level(0) == 0.0
    assert c.sampling_probs()[1] == 0.0


def test_exclusion_of_all_correct_and_all_wrong_groups_and_recheck():
    tasks = [TaskInfo("e", name) for name in ("solved", "hopeless", "useful")]
    c = Curriculum(tasks, UniformStrategy(), ExclusionConfig(enabled=True, recheck_after=10), seed=0)
    c.report(0, [1.0, 1.0, 1.0, 1.0])  # all correct
    c.report(1, [0.0, 0.0, 0.0, 0.0])  # all wrong
    c.report(2, [1.0, 0.0, 1.0, 0.0])  # mixed: keeps its place
    c.after_reports([0, 1, 2])
    assert c.excluded().tolist() == [True, True, False]
    # For the next 10 handed-out tasks only "useful" is eligible (n > eligible: with replacement).
    assert c.sample(10).tolist() == [2] * 10
    # Clock 10 == excluded_until: the re-check admits both again.
    assert c.excluded().tolist() == [False, False, False]
    assert sorted(c.sample(3).tolist()) == [0, 1, 2]
    # Still all correct at the re-check: excluded again; now solved.
    c.report(0, [1.0, 1.0])
    c.report(1, [1.0, 0.0])
    c.after_reports([0, 1])
    assert c.excluded().tolist() == [True, False, False]


def test_exclusion_ignores_small_groups_and_falls_back_when_everything_is_excluded():
    tasks = [TaskInfo("e", "a"), TaskInfo("e", "b")]
    c = Curriculum(tasks, UniformStrategy(), ExclusionConfig(enabled=True, min_group_size=3), seed=0)
    c.report(0, [1.0, 1.0])  # 2 < min_group_size: no exclusion
    assert not c.excluded().any()
    c.report(0, [1.0, 1.0, 1.0])
    c.report(1, [0.0, 0.0, 0.0])
    assert c.excluded().all()
    # Rather than stall training, excluded tasks are re-checked early.
    assert sorted(c.sample(2).tolist()) == [0, 1]


def test_env_mix_weights():
    tasks = [TaskInfo("a", f"a{i}") for i in range(50)] + [TaskInfo("b", f"b{i}") for i in range(50)]
    c = Curriculum(tasks, UniformStrategy(), env_weights={"a": 3.0, "b": 1.0}, seed=3)
    p = c.sampling_probs()
    # Per draw: P(env a) = 3/4 spread over 50 tasks, P(env b) = 1/4 over 50.
    np.testing.assert_allclose(p[:50], 0.75 / 50, rtol=1e-12)
    np.testing.assert_allclose(p[50:], 0.25 / 50, rtol=1e-12)
    draws = np.concatenate([c.sample(1) for _ in range(4000)])
    share_a = (draws < 50).mean()
    assert abs(share_a - 0.75) < 0.03  # binomial sd sqrt(.75*.25/4000) = 0.0068; 4.4 sd
    only_b = c.sample(20, env="b")
    assert (only_b >= 50).all() and len(set(only_b.tolist())) == 20


def test_env_with_zero_weight_is_never_mixed_in_but_can_be_asked_for():
    tasks = [TaskInfo("a", "x"), TaskInfo("b", "y")]
    c = Curriculum(tasks, UniformStrategy(), env_weights={"b": 0.0}, seed=0)
    assert c.sample(5).tolist() == [0] * 5
    assert c.sample(1, env="b").tolist() == [1]
    with pytest.raises(KeyError):
        c.sample(1, env="nope")


def test_gumbel_top_k_first_draw_follows_the_weights():
    tasks = [TaskInfo("e", str(i)) for i in range(3)]
    c = Curriculum(tasks, LearnabilityStrategy(prior_strength=1.0, min_weight=0.0), seed=11)
    # Stats that give weights 0.25, 0.09, 0.09 (see the hand values above) -> P = 25/43, 9/43, 9/43.
    c.report(1, [1.0] * 8)
    c.report(2, [0.0] * 8)
    c.after_reports([1, 2])
    np.testing.assert_allclose(c.sampling_probs(), np.array([25, 9, 9]) / 43, rtol=1e-12)
    first = np.array([c.sample(1)[0] for _ in range(6000)])
    share0 = (first == 0).mean()
    assert abs(share0 - 25 / 43) < 0.03  # binomial sd 0.0064
    # Two distinct tasks per call without replacement.
    assert all(len(set(c.sample(2).tolist())) == 2 for _ in range(50))


def test_draws_without_replacement_when_the_mass_is_on_one_task():
    # 0.997 of the mass on task 0: drawing with replacement repeats it, so the
    # sampler must fall back to racing the remaining tasks.
    c = Curriculum([TaskInfo("e", str(i)) for i in range(4)], UniformStrategy(), seed=5)
    p = np.array([997.0, 1.0, 1.0, 1.0])
    firsts, seconds = np.zeros(4), np.zeros(4)
    for _ in range(3000):
        rows = c._without_replacement(p, 4)
        assert sorted(rows.tolist()) == [0, 1, 2, 3]
        firsts[rows[0]] += 1
        seconds[rows[1]] += 1
    assert firsts[0] / 3000 > 0.99  # P(first = 0) = 0.997
    # Given 0 first, the second is uniform over 1..3 (1/3 each; sd 0.0086 over 3000).
    assert np.all(np.abs(seconds[1:] / 3000 - 0.332) < 0.04)


def test_same_seed_same_sequence_and_state_dict_resume():
    tasks, truth = population(per_kind=20)
    cfg = dict(strategy=LearnabilityStrategy(), exclusion=ExclusionConfig(enabled=True, recheck_after=50), seed=7)
    a, b = Curriculum(tasks, **cfg), Curriculum(tasks, **cfg)
    simulate(a, truth, rounds=20, warmup=0, seed=3)
    simulate(b, truth, rounds=20, warmup=0, seed=3)
    assert a.state_dict() == b.state_dict()
    # Resume from a JSON round trip of the state: the continuation is identical.
    state = json.loads(json.dumps(a.state_dict()))
    resumed = Curriculum(tasks, strategy=LearnabilityStrategy(), exclusion=ExclusionConfig(enabled=True, recheck_after=50), seed=999)
    resumed.load_state_dict(state)
    np.testing.assert_array_equal(resumed.weights(), a.weights())
    np.testing.assert_array_equal(resumed.excluded(), a.excluded())
    for _ in range(5):
        np.testing.assert_array_equal(resumed.sample(16), a.sample(16))
    other = Curriculum(tasks, strategy=LearnabilityStrategy(), seed=8)
    assert not np.array_equal(other.sample(16), Curriculum(tasks, strategy=LearnabilityStrategy(), seed=7).sample(16))


def test_ordered_level_survives_state_dict():
    tasks = [TaskInfo("e", f"t{d}", float(d)) for d in range(3)]
    c = Curriculum(tasks, OrderedStrategy(promote_at=0.5, min_attempts=2), seed=0)
    c.report(0, [1.0, 1.0])
    c.after_reports([0])
    assert c.strategy.level(0) == 1.0
    resumed = Curriculum(tasks, OrderedStrategy(promote_at=0.5, min_attempts=2), seed=0)
    resumed.load_state_dict(json.loads(json.dumps(c.state_dict())))
    assert resumed.strategy.level(0) == 1.0
    np.testing.assert_array_equal(resumed.weights(), c.weights())


def test_state_from_another_strategy_is_refused():
    tasks = [TaskInfo("e", "a")]
    state = Curriculum(tasks, UniformStrategy()).state_dict()
    with pytest.raises(ValueError, match="strategy 'uniform'"):
        Curriculum(tasks, LearnabilityStrategy()).load_state_dict(state)


def test_state_of_tasks_no_longer_in_the_pools_is_returned():
    c = Curriculum([TaskInfo("e", "a"), TaskInfo("e", "gone")], UniformStrategy())
    c.report(1, [1.0])
    smaller = Curriculum([TaskInfo("e", "a")], UniformStrategy())
    unknown = smaller.load_state_dict(c.state_dict())
    assert [(r.env, r.task_id, r.attempts) for r in unknown] == [("e", "gone", 1)]


def test_no_positive_weight_is_an_error():
    c = Curriculum([TaskInfo("e", "a", 1.0), TaskInfo("e", "b", 0.0)], OrderedStrategy(review_weight=0.0))
    with pytest.raises(NoTasks):
        Curriculum([TaskInfo("e", "a")], UniformStrategy(), env_weights={"e": 0.0}).sample(1)
    assert c.sample(1).tolist() == [1]


def test_duplicate_task_ids_are_rejected():
    with pytest.raises(ValueError, match="duplicate"):
        TaskTable([TaskInfo("e", "a"), TaskInfo("e", "a")], window=4)

"""Percentile bootstrap over tasks: coverage in simulation, pairing, seeding."""

from __future__ import annotations

import numpy as np

from outrider.eval import stats

# A population of task difficulties: per-task success probabilities, including tasks
# no sample solves and tasks every sample solves. Each repetition draws its tasks from
# this population, so the quantity the interval estimates is the population mean
#   pass@k = mean_i (1 − (1 − p_i)^k)   over the population's p_i,
# and the bootstrap over tasks has to account for both the task draw and the sampling
# of n completions per task.
POPULATION = np.array([0.0, 0.0, 0.02, 0.05, 0.1, 0.15, 0.25, 0.4, 0.6, 0.8, 0.95, 1.0])


def test_the_90_percent_interval_covers_the_true_pass_at_k_in_85_to_95_percent_of_200_repetitions():
    rng = np.random.default_rng(2024)
    tasks, n, ks = 200, 16, [1, 4, 16]
    truth = np.array([np.mean(1 - (1 - POPULATION) ** k) for k in ks])
    covered = np.zeros(len(ks))
    repetitions = 200
    for rep in range(repetitions):
        p = rng.choice(POPULATION, size=tasks)
        correct = rng.binomial(n, p)
        per_task = stats.per_task_pass_at_k(np.full(tasks, n), correct, ks, [f"t{i}" for i in range(tasks)])
        boot = stats.bootstrap_means(per_task, stats.bootstrap_weights(tasks, 1000, seed=rep))
        lo, hi = stats.percentile_interval(boot, 0.9)
        covered += (lo <= truth) & (truth <= hi)
    share = covered / repetitions
    assert ((0.85 <= share) & (share <= 0.95)).all(), share


def test_bootstrap_weights_are_seeded_multinomial_draws_of_all_tasks():
    w = stats.bootstrap_weights(7, 1000, seed=3)
    assert w.shape == (1000, 7) and (w.sum(axis=1) == 7).all()
    assert (w == stats.bootstrap_weights(7, 1000, seed=3)).all()
    assert not (w == stats.bootstrap_weights(7, 1000, seed=4)).all()
    # Each task is drawn T·(1/T) = 1 time per resample on average.
    assert abs(w.mean() - 1.0) < 1e-12


def test_bootstrap_means_match_explicit_index_resampling():
    # The weighted mean (W @ v) / T is the mean over the resampled task list.
    rng = np.random.default_rng(0)
    values = rng.random((5, 3))
    w = stats.bootstrap_weights(5, 1000, seed=1)
    means = stats.bootstrap_means(values, w)
    for b in (0, 17, 999):
        idx = np.repeat(np.arange(5), w[b])
        np.testing.assert_allclose(means[b], values[idx].mean(axis=0), rtol=0, atol=1e-15)


def test_paired_difference_interval_is_narrower_than_the_unpaired_one_for_correlated_checkpoints():
    # Checkpoint B is A plus a small constant on every task: resampling the same tasks
    # for both makes the difference exactly that constant in every resample.
    rng = np.random.default_rng(5)
    a = rng.random(50) * 0.9
    b = a + 0.05
    w = stats.bootstrap_weights(50, 1000, seed=0)
    lo, hi = stats.percentile_interval(stats.bootstrap_means(b, w) - stats.bootstrap_means(a, w), 0.9)
    assert abs(lo - 0.05) < 1e-12 and abs(hi - 0.05) < 1e-12


def test_percentile_interval_of_a_known_distribution():
    # The 5% and 95% quantiles (linear interpolation) of 0, 1, …, 100 are 5 and 95.
    lo, hi = stats.percentile_interval(np.arange(101.0), 0.9)
    assert abs(lo - 5.0) < 1e-12 and abs(hi - 95.0) < 1e-12

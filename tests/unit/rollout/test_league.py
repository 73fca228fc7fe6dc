"""The self-play opponent's version: league membership, weights, inverse-CDF draws and
their reproducibility from the seed (outrider/rollout/league.py)."""

from __future__ import annotations

from collections import Counter

import pytest

from outrider.config.rollout import SelfPlayConfig
from outrider.rollout.league import OpponentSampler, league, league_weights, pick, unit_draw


def test_league_is_the_most_recent_resident_versions_before_the_latest():
    assert league([9, 8, 7, 6, 5], latest=9, size=3) == [8, 7, 6]
    assert league([9, 8, 6], latest=9, size=4) == [8, 6]  # version 7 is not held: not a member
    assert league([9], latest=9, size=4) == []
    assert league([12, 3, 11], latest=11, size=2) == [3]  # newer than the latest: never


def test_recency_weights_and_inverse_cdf_by_hand():
    members = [4, 3, 2]
    # latest 5: w = 1/1, 1/2, 1/3 -> normalised 6/11, 3/11, 2/11; cumulative 6/11 ≈ 0.545, 9/11 ≈ 0.818
    weights = league_weights(members, latest=5, weighting="recency")
    assert weights == [1.0, 0.5, 1 / 3]
    assert [pick(members, weights, u) for u in (0.0, 0.54, 0.55, 0.81, 0.82, 0.999999)] == [4, 4, 3, 3, 2, 2]
    # uniform thirds: cumulative 1/3, 2/3
    uniform = league_weights(members, latest=5, weighting="uniform")
    assert [pick(members, uniform, u) for u in (0.33, 0.34, 0.66, 0.67)] == [4, 3, 3, 2]
    with pytest.raises(ValueError, match="no members"):
        pick([], [], 0.5)


def test_unit_draw_is_the_sha256_of_seed_and_key():
    import hashlib

    expected = int(hashlib.sha256(b"7:group-3").hexdigest()[:16], 16) / 2**64
    assert unit_draw(7, "group-3") == expected
    assert 0.0 <= expected < 1.0
    assert unit_draw(7, "group-3") != unit_draw(8, "group-3")


def test_league_draws_replay_from_the_seed_and_cover_the_league():
    cfg = SelfPlayConfig(envs=["nim"], opponent="league", league_size=3, seed=11)
    resident = [10, 9, 8, 7, 6]
    keys = [f"run/{i}" for i in range(60)]
    first = [OpponentSampler.of(cfg).choose(10, resident, k) for k in keys]
    # A fresh sampler, keys in another order: the same opponent for every group.
    again = {k: OpponentSampler.of(cfg).choose(10, resident, k) for k in reversed(keys)}
    assert first == [again[k] for k in keys]
    assert set(first) == {9, 8, 7}  # only the 3 most recent before the latest
    other = [OpponentSampler.of(cfg.model_copy(update={"seed": 12})).choose(10, resident, k) for k in keys]
    assert other != first
    # Each draw is exactly pick(members, weights, unit_draw(seed, key)).
    assert first == [pick([9, 8, 7], [1.0, 1.0, 1.0], unit_draw(11, k)) for k in keys]
    assert min(Counter(first).values()) >= 10  # 60 uniform draws over 3: none starved (p < 1e-3)


def test_latest_fixed_and_an_empty_league():
    assert OpponentSampler("latest").choose(5, [5, 4], "g") == 5
    assert OpponentSampler("fixed", fixed_version=2).choose(5, [5, 4], "g") == 2
    assert OpponentSampler("league").choose(0, [0], "g") == 0  # nothing earlier held yet: the latest


def test_training_both_seats_needs_the_latest_as_opponent():
    with pytest.raises(ValueError, match="opponent must be the latest policy, not 'league'"):
        SelfPlayConfig(opponent="league", train_both_seats=True)
    assert SelfPlayConfig(train_both_seats=True).opponent == "latest"

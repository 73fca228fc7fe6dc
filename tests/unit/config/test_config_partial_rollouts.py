"""rollout.partial and rollout.repetition: off by default, bounds checked with the field's path."""

from __future__ import annotations

import pytest

from outrider.config import ConfigError, parse_config


def _problems(data) -> dict[str, str]:
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    return dict(error.value.problems)


def test_both_are_off_by_default():
    rollout = parse_config({}).rollout
    assert rollout.partial.segment_tokens is None and not rollout.partial.enabled
    assert rollout.repetition is None


def test_settings_parse():
    rollout = parse_config({"rollout": {"partial": {"segment_tokens": 64}, "repetition": {"ngram": 3, "reward": -1}}}).rollout
    assert rollout.partial.enabled and rollout.partial.max_parks == 2 and rollout.partial.max_parked is None
    assert (rollout.repetition.ngram, rollout.repetition.max_repeats, rollout.repetition.reward) == (3, 4, -1.0)


def test_out_of_range_values_name_their_field():
    assert "rollout.partial.segment_tokens" in _problems({"rollout": {"partial": {"segment_tokens": 0}}})
    assert "rollout.repetition.ngram" in _problems({"rollout": {"repetition": {"ngram": 0}}})
    assert "rollout.repetition.max_repeats" in _problems({"rollout": {"repetition": {"max_repeats": 0}}})


def test_more_parks_than_the_learner_tolerates_in_lag_is_refused():
    problems = _problems({"rollout": {"partial": {"segment_tokens": 8, "max_parks": 3}}, "learner": {"max_policy_lag": 2}})
    (message,) = problems.values()
    assert "rollout.partial.max_parks=3 exceeds learner.max_policy_lag=2" in message
    # Stale groups trained with a correction instead of dropped: any number of parks.
    parse_config({
        "rollout": {"partial": {"segment_tokens": 8, "max_parks": 3}},
        "learner": {"max_policy_lag": 2, "stale_groups": "correct", "algorithm": {"transforms": [{"name": "tis_partial"}]}},
    })

"""rollout.search: off by default, parsed, bounds and cross-field rules named by their path."""

from __future__ import annotations

import pytest

from outrider.config import ConfigError, parse_config


def _problems(data) -> dict[str, str]:
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    return dict(error.value.problems)


def test_search_is_off_by_default():
    search = parse_config({}).rollout.search
    assert search.mode == "none" and not search.enabled
    assert (search.width, search.expansions, search.delimiter, search.aggregate) == (4, 4, None, "last")


def test_settings_parse():
    search = parse_config({"rollout": {"search": {"mode": "mcts", "simulations": 5, "ucb_c": 0.5, "delimiter": "\n"}}}).rollout.search
    assert search.enabled and (search.mode, search.simulations, search.ucb_c, search.delimiter) == ("mcts", 5, 0.5, "\n")


def test_bad_values_name_their_field():
    assert "rollout.search.mode" in _problems({"rollout": {"search": {"mode": "dfs"}}})
    assert "rollout.search.width" in _problems({"rollout": {"search": {"width": 0}}})
    assert "rollout.search.ucb_c" in _problems({"rollout": {"search": {"ucb_c": -1}}})
    assert "rollout.search.delimiter" in _problems({"rollout": {"search": {"delimiter": ""}}})


def test_cross_field_rules():
    (message,) = _problems({"rollout": {"search": {"mode": "beam", "width": 4, "expansions": 4, "token_budget": 15}}}).values()
    assert "token_budget (15) must allow one token to each of the first 16 proposals" in message
    (message,) = _problems({"rollout": {"search": {"mode": "beam", "width": 1}}}).values()
    assert "search.width (1) must be at least min_group_size (2)" in message
    (message,) = _problems({"rollout": {"search": {"mode": "beam"}, "partial": {"segment_tokens": 8}}}).values()
    assert "search rollouts are not parked" in message
    # Off: the search fields are not checked against the rest.
    parse_config({"rollout": {"search": {"width": 1, "token_budget": 1}}})

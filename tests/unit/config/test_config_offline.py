"""kind: sft / kind: dpo configs load like run configs and fail with the field's path."""

from __future__ import annotations

import pytest

from outrider.config import ConfigError, DPOConfig, SFTConfig, parse_config


def problems(data: dict) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "offline.yaml")
    return dict(info.value.problems)


def test_kinds_select_the_offline_models():
    assert isinstance(parse_config({"kind": "sft", "data": {"path": "chat.jsonl"}}), SFTConfig)
    dpo = parse_config({"kind": "dpo", "loss": {"name": "ipo", "params": {"tau": 0.5}}})
    assert isinstance(dpo, DPOConfig) and dpo.loss.params == {"tau": 0.5}
    assert SFTConfig(name="x", output_dir="/tmp/o").run_dir.as_posix() == "/tmp/o/x"


def test_dpo_takes_only_policy_preference_losses():
    # bradley_terry is registered too, but it trains a reward model on scalar scores.
    assert problems({"kind": "dpo", "loss": {"name": "bradley_terry"}}) == {
        "loss": "Value error, unknown preference loss for a policy 'bradley_terry'; valid: dpo, ipo"
    }
    assert problems({"kind": "dpo", "loss": {"name": "dpo", "params": {"beta": 0}}}) == {
        "loss": "Value error, dpo.beta=0 must be > 0.0"
    }


def test_offline_fields_are_checked():
    assert problems({"kind": "sft", "data": {"format": "csv"}}) == {
        "data.format": "Input should be 'chat', 'trajectories' or 'eval_samples' (got 'csv')"
    }
    assert problems({"kind": "sft", "batch_size": 0, "datas": {}}) == {
        "batch_size": "Input should be greater than or equal to 1 (got 0)",
        "datas": "unknown field",
    }

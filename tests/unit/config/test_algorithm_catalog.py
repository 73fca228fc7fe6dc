"""The config checks algorithm names and parameters against the generated catalog (algorithms.json)."""

import pytest

from outrider.config import ConfigError, parse_config
from outrider.config.algorithm_catalog import check_params

# That the catalog matches the registries: tests/unit/repo/test_generated_catalogs.py.


def test_unknown_algorithm_names_list_the_valid_ones():
    with pytest.raises(ConfigError) as error:
        parse_config({"learner": {"algorithm": {"policy_loss": {"name": "ppo"}}}})
    ((path, message),) = error.value.problems
    assert path == "learner.algorithm.policy_loss"
    assert "unknown policy loss 'ppo'; valid: cispo, clip_cov, clip_higher, dual_clip, gspo, kl_cov, pg, ppo_clip" in message


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"clip": 0.1}, "ppo_clip: unknown parameter(s) clip; valid: clip_eps_low, clip_eps_high, dual_clip_c"),
        ({"clip_eps_low": 1.5}, "ppo_clip.clip_eps_low=1.5 must be < 1.0"),
        ({"clip_eps_low": "wide"}, "ppo_clip.clip_eps_low: expected float, got 'wide'"),
        ({"clip_eps_low": True}, "ppo_clip.clip_eps_low: expected float, got True"),
    ],
)
def test_bad_parameters_are_named(params, message):
    with pytest.raises(ValueError) as error:
        check_params("policy_loss", "ppo_clip", params)
    assert str(error.value) == message


def test_gae_without_a_critic_is_refused_at_load_time():
    with pytest.raises(ConfigError, match="advantage 'gae' needs a value critic"):
        parse_config({"learner": {"algorithm": {"advantage": {"name": "gae"}}}})
    config = parse_config({"learner": {"critic": {"enabled": True}, "algorithm": {"advantage": {"name": "gae", "params": {"lam": 0.9}}}}})
    assert config.learner.algorithm.advantage.params == {"lam": 0.9}

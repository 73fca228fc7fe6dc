"""Names of registered things as `Literal` types: generated, do not edit.

Written by `make catalog` (scripts/generate_catalogs.py) from the learner's algorithm
registries (`outrider.learner.algos.REGISTRIES`) and the built-in environments
(`envs/builtin/`); tests/unit/repo/test_generated_catalogs.py fails when it is stale.
The config package reads it instead of importing those layers.
"""

from __future__ import annotations

from typing import Any, Literal


# Algorithm registries (the REGISTRIES key in a comment), names sorted.

# advantage
AdvantageEstimatorName = Literal[
    "dr_grpo",
    "gae",
    "grpo",
    "grpo_process",
    "objective_weights",
    "opo",
    "reinforce",
    "reinforce_pp",
    "reinforce_pp_baseline",
    "rloo",
]

# policy_loss
PolicyLossName = Literal[
    "cispo",
    "clip_cov",
    "clip_higher",
    "dual_clip",
    "gspo",
    "kl_cov",
    "pg",
    "ppo_clip",
    "ppo_kl",
]

# loss_transform
LossTransformName = Literal[
    "entropy_advantage",
    "forking_tokens",
    "nsr_only",
    "offpolicy_sequence_mask",
    "psr_only",
    "tis_partial",
    "tis_sequence",
    "tis_token",
    "w_reinforce",
]

# aggregation
LossAggregationName = Literal[
    "seq_mean_token_mean",
    "seq_mean_token_sum",
    "seq_mean_token_sum_norm",
    "token_mean",
]

# kl_estimator
KLEstimatorName = Literal["k1", "k2", "k3", "k3_is"]

# kl_controller
KLControllerName = Literal["adaptive", "fixed"]

# objective_weight_scheme
ObjectiveWeightSchemeName = Literal[
    "dr_grpo",
    "grpo",
    "logit",
    "reinforce",
    "rejection_sampling",
    "rloo",
]

# reward_shaping
RewardShapingName = Literal["kimi_length", "long2short"]

# preference_loss
PreferenceLossName = Literal["bradley_terry", "dpo", "ipo"]

# REGISTRIES key -> Literal of its names.
REGISTRY_NAME_TYPES: dict[str, Any] = {
    "advantage": AdvantageEstimatorName,
    "policy_loss": PolicyLossName,
    "loss_transform": LossTransformName,
    "aggregation": LossAggregationName,
    "kl_estimator": KLEstimatorName,
    "kl_controller": KLControllerName,
    "objective_weight_scheme": ObjectiveWeightSchemeName,
    "reward_shaping": RewardShapingName,
    "preference_loss": PreferenceLossName,
}

# Built-in environments, in the order the env service registers them by default
# (new ones are appended).
BuiltinEnvName = Literal["math", "code", "python-tool", "guess-number", "nim"]

BUILTIN_ENV_NAMES: tuple[str, ...] = ("math", "code", "python-tool", "guess-number", "nim")

BUILTIN_ENV_ENTRY_POINTS: dict[str, str] = {
    "math": "outrider.envs.builtin.math_env:MathEnv",
    "code": "outrider.envs.builtin.code_env:CodeEnv",
    "python-tool": "outrider.envs.builtin.python_tool_env:PythonToolEnv",
    "guess-number": "outrider.envs.builtin.guess_number_env:GuessNumberEnv",
    "nim": "outrider.envs.builtin.nim_env:NimEnv",
}

"""Outrider's learner algorithm library: pure functions over tensors in name-keyed registries.

One registry per kind, one signature per kind (``entry(inputs, params)`` validates
the params type and the optional inputs the entry requires, then calls it):

=====================  ===========================================================  =========================
registry               signature                                                    output
=====================  ===========================================================  =========================
ADVANTAGE_ESTIMATORS   fn(AdvantageInputs, params)                                  AdvantageOutputs (B, T)
POLICY_LOSSES          fn(PolicyLossInputs, params)                                 PolicyLossOutput (B, T)
LOSS_TRANSFORMS        fn(PolicyLossInputs, params)                                 TransformOutput
AGGREGATIONS           fn(AggregationInputs, params)                                scalar Tensor
KL_ESTIMATORS          fn(KLInputs, params)                                         Tensor (B, T)
KL_CONTROLLERS         fn(params)                                                   KLController (stateful)
WEIGHT_SCHEMES         fn(M: int, params)                                           BinaryWeights
REWARD_SHAPINGS        fn(RewardShapingInputs, params)                              rewards (B,)
PREFERENCE_LOSSES      fn(PreferenceInputs, params)                                 PreferenceLossOutput (B,)
=====================  ===========================================================  =========================

``REGISTRIES`` maps a config section name to its registry; every entry has
``params_type`` (a frozen dataclass whose fields carry defaults, a one-line doc and
bounds in ``metadata``; see :func:`param_schema`) and ``requires`` (the optional input
fields it needs, e.g. ``values`` for GAE, so the learner knows to run the critic).
KL placement is a name -> :class:`KLPlacement` table (``get_kl_placement``), and so is
where on-policy distillation's teacher signal enters (``get_distill_placement``,
``distillation.py``).
``failures.py`` runs any estimator or shaping on the rows that are not infra failures.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from outrider.config.names import REGISTRY_NAME_TYPES

from .advantages import (
    ADVANTAGE_ESTIMATORS,
    AdvantageEstimatorName,
    AdvantageInputs,
    AdvantageOutputs,
    sequence_scores,
    token_level_rewards,
)
from .aggregation import AGGREGATIONS, AggregationInputs, AggregationName
from .distillation import (
    DISTILL_PLACEMENTS,
    DistillPlacement,
    DistillPlacementName,
    distilled_advantages,
    distilled_loss,
    get_distill_placement,
    reverse_kl_advantages,
)
from .failures import enough_valid, estimate_on_rows, shape_on_rows, trainable_rows
from .kl import (
    KL_CONTROLLERS,
    KL_ESTIMATORS,
    KL_PLACEMENTS,
    KLController,
    KLControllerName,
    KLEstimatorName,
    KLInputs,
    KLPlacement,
    KLPlacementName,
    get_kl_placement,
    kl_loss_term,
    kl_reward_penalty,
)
from .masked import masked_mean, masked_sum, masked_var, masked_whiten
from .metrics import covariance_stats, entropy_from_logits, logprobs_and_entropy, logprobs_from_logits, ratio_metrics
from .objective_transforms import (
    WEIGHT_SCHEMES,
    BinaryWeights,
    WeightSchemeName,
    implied_objective,
    implied_objective_derivative,
    weights_from_objective,
)
from .off_policy import OverlongParams, dynamic_sampling_mask, overlong_penalty
from .passk import pass_at_k, pass_at_k_curve
from .policy_losses import (
    LOSS_TRANSFORMS,
    POLICY_LOSSES,
    LossTransformName,
    PenaltyParams,
    PolicyLossInputs,
    PolicyLossName,
    PolicyLossOutput,
    TransformOutput,
    ValueLossInputs,
    ValueLossParams,
    value_loss,
)
from .preference import PREFERENCE_LOSSES, PreferenceInputs, PreferenceLossName, PreferenceLossOutput
from .process_rewards import step_rewards_from_scores
from .registry import Entry, NoParams, Params, Registry, UnknownNameError, param_schema
from .reward_shaping import REWARD_SHAPINGS, RewardShapingInputs, RewardShapingName

# Importing a module registers its entries. Every module of this package is imported, so
# a new file with its registrations needs no import line here (docs/development.md,
# Adding an algorithm); `make catalog` then exports it to the config.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
del _module

REGISTRIES: dict[str, Registry[Any]] = {
    "advantage": ADVANTAGE_ESTIMATORS,
    "policy_loss": POLICY_LOSSES,
    "loss_transform": LOSS_TRANSFORMS,
    "aggregation": AGGREGATIONS,
    "kl_estimator": KL_ESTIMATORS,
    "kl_controller": KL_CONTROLLERS,
    "objective_weight_scheme": WEIGHT_SCHEMES,
    "reward_shaping": REWARD_SHAPINGS,
    "preference_loss": PREFERENCE_LOSSES,
}

# Literal of the valid names, per REGISTRIES key (generated from the registries by `make catalog`).
NAME_TYPES: dict[str, Any] = REGISTRY_NAME_TYPES


def describe() -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every registry's names with their hyper-parameter schema: {kind: {name: [field, ...]}}."""
    return {
        kind: {e.name: param_schema(e.params_type) for e in reg} for kind, reg in REGISTRIES.items()
    }


__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "AGGREGATIONS",
    "DISTILL_PLACEMENTS",
    "KL_CONTROLLERS",
    "KL_ESTIMATORS",
    "KL_PLACEMENTS",
    "LOSS_TRANSFORMS",
    "NAME_TYPES",
    "POLICY_LOSSES",
    "PREFERENCE_LOSSES",
    "REGISTRIES",
    "REWARD_SHAPINGS",
    "WEIGHT_SCHEMES",
    "AdvantageEstimatorName",
    "AdvantageInputs",
    "AdvantageOutputs",
    "AggregationInputs",
    "AggregationName",
    "BinaryWeights",
    "DistillPlacement",
    "DistillPlacementName",
    "Entry",
    "KLController",
    "KLControllerName",
    "KLEstimatorName",
    "KLInputs",
    "KLPlacement",
    "KLPlacementName",
    "LossTransformName",
    "NoParams",
    "OverlongParams",
    "Params",
    "PenaltyParams",
    "PolicyLossInputs",
    "PolicyLossName",
    "PolicyLossOutput",
    "PreferenceInputs",
    "PreferenceLossName",
    "PreferenceLossOutput",
    "Registry",
    "RewardShapingInputs",
    "RewardShapingName",
    "TransformOutput",
    "UnknownNameError",
    "ValueLossInputs",
    "ValueLossParams",
    "WeightSchemeName",
    "covariance_stats",
    "describe",
    "distilled_advantages",
    "distilled_loss",
    "dynamic_sampling_mask",
    "enough_valid",
    "entropy_from_logits",
    "estimate_on_rows",
    "get_distill_placement",
    "get_kl_placement",
    "implied_objective",
    "implied_objective_derivative",
    "kl_loss_term",
    "kl_reward_penalty",
    "logprobs_and_entropy",
    "logprobs_from_logits",
    "masked_mean",
    "masked_sum",
    "masked_var",
    "masked_whiten",
    "overlong_penalty",
    "param_schema",
    "pass_at_k",
    "pass_at_k_curve",
    "ratio_metrics",
    "reverse_kl_advantages",
    "sequence_scores",
    "shape_on_rows",
    "step_rewards_from_scores",
    "token_level_rewards",
    "trainable_rows",
    "value_loss",
    "weights_from_objective",
]

"""The configured algorithms, resolved once from their registries.

The learner calls `Algorithms` members through the registries' one signature
per kind; it never looks at a name again after this point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from outrider.config.learner import Algorithm, AlgorithmConfig, DistillationConfig
from outrider.learner.algos import (
    ADVANTAGE_ESTIMATORS,
    AGGREGATIONS,
    KL_CONTROLLERS,
    KL_ESTIMATORS,
    LOSS_TRANSFORMS,
    POLICY_LOSSES,
    REWARD_SHAPINGS,
    DistillPlacement,
    KLController,
    KLPlacement,
    PenaltyParams,
    Registry,
    ValueLossParams,
    get_distill_placement,
    get_kl_placement,
)
from outrider.learner.algos.registry import Entry, Params


@dataclass(frozen=True)
class Configured:
    """A registry entry with its validated hyper-parameters."""

    entry: Entry
    params: Params

    def __call__(self, inputs: Any) -> Any:
        return self.entry(inputs, self.params)

    @property
    def requires(self) -> frozenset[str]:
        return self.entry.requires


def _resolve(registry: Registry, spec: Algorithm) -> Configured:
    entry = registry.get(spec.name)
    return Configured(entry, entry.make_params(**spec.params))


@dataclass(frozen=True)
class Distillation:
    """On-policy distillation to the teacher (placement `none`: no teacher)."""

    placement: DistillPlacement
    coef: float
    rl_coef: float
    estimator: Configured

    @classmethod
    def from_config(cls, cfg: DistillationConfig) -> Distillation:
        return cls(
            placement=get_distill_placement(cfg.placement if cfg.teacher is not None else "none"),
            coef=cfg.coef,
            rl_coef=cfg.rl_coef,
            estimator=_resolve(KL_ESTIMATORS, cfg.estimator),
        )


NO_DISTILLATION = Distillation.from_config(DistillationConfig())


@dataclass(frozen=True)
class Algorithms:
    advantage: Configured
    policy_loss: Configured
    transforms: tuple[Configured, ...]
    aggregation: Configured
    kl_estimator: Configured
    kl_placement: KLPlacement
    value_loss: ValueLossParams
    entropy_coef: float
    reward_shapings: tuple[Configured, ...] = ()
    min_valid: int = 1
    distillation: Distillation = NO_DISTILLATION

    @classmethod
    def from_config(cls, cfg: AlgorithmConfig) -> Algorithms:
        return cls(
            advantage=_resolve(ADVANTAGE_ESTIMATORS, cfg.advantage),
            policy_loss=_resolve(POLICY_LOSSES, cfg.policy_loss),
            transforms=tuple(_resolve(LOSS_TRANSFORMS, t) for t in cfg.transforms),
            aggregation=_resolve(AGGREGATIONS, cfg.aggregation),
            kl_estimator=_resolve(KL_ESTIMATORS, cfg.kl.estimator),
            kl_placement=get_kl_placement(cfg.kl.placement),
            value_loss=ValueLossParams(clip_eps=cfg.value_clip),
            entropy_coef=cfg.entropy_coef,
            reward_shapings=tuple(_resolve(REWARD_SHAPINGS, s) for s in cfg.reward_shaping),
            min_valid=cfg.min_valid,
            distillation=Distillation.from_config(cfg.distillation),
        )

    @property
    def uses_kl(self) -> bool:
        return self.kl_placement.in_reward or self.kl_placement.in_loss

    def needs(self, field: str) -> bool:
        """Whether any configured algorithm requires the optional input `field`."""
        parts = (self.advantage, self.policy_loss, *self.transforms)
        return any(field in part.requires for part in parts)


def make_kl_controller(cfg: AlgorithmConfig) -> KLController:
    entry = KL_CONTROLLERS.get(cfg.kl.controller.name)
    return entry.fn(entry.make_params(**cfg.kl.controller.params))


def make_penalty_controller(algos: Algorithms) -> KLController | None:
    """The controller of the policy loss's adaptive penalty coefficient (``ppo_kl``), if
    its params make one (:class:`PenaltyParams`); None for every other loss."""
    params = algos.policy_loss.params
    return params.make_controller() if isinstance(params, PenaltyParams) else None

"""The run config: one file that describes a whole training run or local stack."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, model_validator

from outrider.config.base import ConfigModel
from outrider.config.common import BusConfig, RedisConfig
from outrider.config.curriculum import CurriculumServiceConfig
from outrider.config.env import EnvServiceConfig
from outrider.config.learner import LearnerConfig
from outrider.config.policy import PolicyServiceConfig
from outrider.config.reward import RewardServiceConfig
from outrider.config.rollout import EvalConfig, RolloutConfig

# The one list of services, in start order. A service `<name>` is the package
# outrider.services.<name> (services/<name>/, with main.py) and the RunConfig section
# `<name>`; everything else that lists services derives from this (docs/development.md,
# Adding a service): `outrider serve`, the local stack, the Helm chart (`make catalog`).
ServiceName = Literal["policy", "env", "reward", "curriculum"]
SERVICE_NAMES: tuple[str, ...] = get_args(ServiceName)


class StackConfig(ConfigModel):
    mode: Literal["local", "cluster"] = "local"
    """`local` starts the services as supervised subprocesses on this machine;
    `cluster` connects to already running services at `addresses`."""
    services: list[ServiceName] = Field(default_factory=lambda: list(SERVICE_NAMES))
    """Services this run needs."""
    addresses: dict[ServiceName, str] = Field(default_factory=dict)
    """Cluster mode: `host:port` of each service (a Kubernetes Service name works)."""
    startup_timeout_s: float = Field(600.0, gt=0)
    """Local mode: how long a service may take to report SERVING (model loading included)."""

    @model_validator(mode="after")
    def _cluster_needs_addresses(self) -> StackConfig:
        if self.mode == "cluster":
            missing = [name for name in self.services if name not in self.addresses]
            if missing:
                raise ValueError(f"cluster mode needs addresses for: {', '.join(missing)}")
        if len(set(self.services)) != len(self.services):
            raise ValueError("services lists a service twice")
        return self


class RunConfig(ConfigModel):
    kind: Literal["run"] = "run"
    """Config kind marker; files without `kind` are run configs."""
    name: str = Field("outrider", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    """Run name; names the run folder and the trajectory bus keys."""
    output_dir: str = "runs"
    """Parent folder of run folders (`<output_dir>/<name>`): metrics, checkpoints, logs."""
    seed: int = Field(0, ge=0)
    """Seed of every random number generator of the run."""
    redis: RedisConfig = RedisConfig()
    """Redis for the trajectory bus, Celery and curriculum state (null URL: embedded server)."""
    bus: BusConfig = BusConfig()
    """Trajectory bus between rollout workers and the learner."""
    stack: StackConfig = StackConfig()
    """Which services the run uses and where they run."""
    policy: PolicyServiceConfig = PolicyServiceConfig()
    """Policy service settings."""
    env: EnvServiceConfig = EnvServiceConfig()
    """Environment service settings."""
    reward: RewardServiceConfig = RewardServiceConfig()
    """Reward service settings."""
    curriculum: CurriculumServiceConfig = CurriculumServiceConfig()
    """Curriculum service settings."""
    learner: LearnerConfig = LearnerConfig()
    """The DeepSpeed learner: models, algorithm, checkpoints, weight sync."""
    rollout: RolloutConfig = RolloutConfig()
    """Rollout workers: environments, group size, sampling, reward sources."""
    evaluation: EvalConfig = EvalConfig()
    """pass@k on held-out tasks before and after training."""

    @model_validator(mode="after")
    def _parks_within_lag(self) -> RunConfig:
        # A group parked k times is at least k versions old when trained (docs/rollout.md).
        partial, learner = self.rollout.partial, self.learner
        if partial.enabled and learner.stale_groups == "drop" and partial.max_parks > learner.max_policy_lag:
            raise ValueError(
                f"rollout.partial.max_parks={partial.max_parks} exceeds learner.max_policy_lag="
                f"{learner.max_policy_lag}: a group parked that often is dropped as stale when it is done"
            )
        return self

    @property
    def run_dir(self) -> Path:
        """Folder of this run: metrics, checkpoints, logs."""
        return Path(self.output_dir) / self.name

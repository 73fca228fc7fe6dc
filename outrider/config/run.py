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
    auth: Literal["tokens", "mtls", "insecure"] = "tokens"
    """Local mode: the credentials the run makes for itself in `<run_dir>/stack/auth/` (mode
    0700; docs/security.md). `tokens`: a bearer token per role (client, admin) and a Redis
    password; `mtls`: also a CA, server and client certificates, every connection TLS;
    `insecure` (`--insecure`): none, any local process may call every method and read the bus."""

    @model_validator(mode="after")
    def _cluster_needs_addresses(self) -> StackConfig:
        if self.mode == "cluster":
            missing = [name for name in self.services if name not in self.addresses]
            if missing:
                raise ValueError(f"cluster mode needs addresses for: {', '.join(missing)}")
        if len(set(self.services)) != len(self.services):
            raise ValueError("services lists a service twice")
        return self


class DeadlinesConfig(ConfigModel):
    """Deadlines of the run's calls to its services (docs/training.md, Deadlines and watchdogs).

    Every cross-process call of a rollout worker, the dispatcher and the evaluation has one:
    a service that stops answering costs a call its deadline, never a silent hang. (The
    learner's weight updates: `learner.sync.timeout_s`; agent programs:
    `rollout.agents.run_timeout_s`; Redis commands: `redis.socket_timeout_s`.)"""

    policy_s: float = Field(600.0, gt=0, le=86_400)
    """Deadline of one policy service call (Generate of a full group's completions on a CPU
    can take minutes), seconds."""
    env_s: float = Field(60.0, gt=0, le=86_400)
    """Deadline of one env service call (Step runs the environment, a sandboxed program
    included), seconds."""
    reward_s: float = Field(120.0, gt=0, le=86_400)
    """Deadline of one reward service call (Score runs verifiers; ScoreSteps a PRM), seconds."""
    curriculum_s: float = Field(30.0, gt=0, le=86_400)
    """Deadline of one curriculum service call (NextTasks, ReportOutcomes, GetState), seconds."""

    @property
    def longest_s(self) -> float:
        return max(self.policy_s, self.env_s, self.reward_s, self.curriculum_s)


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
    deadlines: DeadlinesConfig = DeadlinesConfig()
    """Deadlines of the calls rollout workers, the dispatcher and evaluation make to the services."""

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

    @model_validator(mode="after")
    def _stall_limits_above_deadlines(self) -> RunConfig:
        # A watchdog must not fire while a call is legitimately running to its deadline: a
        # call that ends (answer or DEADLINE_EXCEEDED) is progress, so the stall limit only
        # has to exceed the longest single wait (docs/training.md, Deadlines and watchdogs).
        waits = {
            "learner.stall_s": (self.learner.stall_s, {"learner.sync.timeout_s": self.learner.sync.timeout_s,
                                                      "redis.socket_timeout_s": self.redis.socket_timeout_s}),
            "rollout.stall_s": (self.rollout.stall_s, {
                "deadlines (longest)": self.deadlines.longest_s,
                "rollout.agents.run_timeout_s": self.rollout.agents.run_timeout_s,
                "redis.socket_timeout_s": self.redis.socket_timeout_s,
            }),
            "rollout.dispatcher_stall_s": (self.rollout.dispatcher_stall_s,
                                           {"rollout.task_time_limit_s": self.rollout.task_time_limit_s}),
        }
        for field, (limit, bounds) in waits.items():
            if not limit:
                continue
            name, longest = max(bounds.items(), key=lambda item: item[1])
            if limit <= longest:
                raise ValueError(
                    f"{field}={limit:g} must exceed {name}={longest:g} (or be 0 to turn the watchdog off): "
                    "a call waiting out its deadline would be taken for a stall"
                )
        return self

    @property
    def run_dir(self) -> Path:
        """Folder of this run: metrics, checkpoints, logs."""
        return Path(self.output_dir) / self.name

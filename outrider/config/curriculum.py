"""Config of the curriculum service (which tasks to practise next)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from outrider.config.base import ConfigModel
from outrider.config.common import RedisConfig, ServerConfig


class UniformStrategy(ConfigModel):
    """Every available task is equally likely."""

    type: Literal["uniform"] = "uniform"
    """Strategy name."""


class OrderedStrategy(ConfigModel):
    """Easy first: tasks unlock level by level (by their difficulty); the next level
    unlocks when the pass rate at the current one exceeds a threshold."""

    type: Literal["ordered"] = "ordered"
    """Strategy name."""
    promote_at: float = Field(0.8, gt=0, le=1)
    """Pass rate (recent attempts at the current level, all its tasks together) that unlocks the next level."""
    min_attempts: int = Field(32, ge=1)
    """Recent attempts at the current level needed before a promotion is considered."""
    review_weight: float = Field(0.1, ge=0, le=1)
    """Sampling weight of tasks of already passed levels, relative to the current level's (1)."""


class LearnabilityStrategy(ConfigModel):
    """Weight ∝ p(1 − p) with p the task's smoothed pass rate: tasks the policy solves
    sometimes are favoured over ones it always or never solves (Foster & Foerster 2025)."""

    type: Literal["learnability"] = "learnability"
    """Strategy name."""
    prior_strength: float = Field(1.0, gt=0, le=1000)
    """p = (passes + a) / (attempts + 2a): a Beta(a, a) prior; unseen tasks get p = 0.5."""
    min_weight: float = Field(0.01, ge=0, le=0.25)
    """Floor of every weight, so no task is starved completely (0.25 is the maximum of p(1−p))."""


StrategyConfig = Annotated[UniformStrategy | OrderedStrategy | LearnabilityStrategy, Field(discriminator="type")]


class ExclusionConfig(ConfigModel):
    """DAPO dynamic sampling (Yu et al. 2025): a task whose latest group was all
    correct or all wrong gives GRPO no signal; skip it for a while, then re-check."""

    enabled: bool = False
    """Turn the filter on (it composes with any strategy)."""
    all_correct: bool = True
    """Exclude tasks whose latest group passed every attempt."""
    all_wrong: bool = True
    """Exclude tasks whose latest group failed every attempt."""
    min_group_size: int = Field(2, ge=1)
    """Groups smaller than this never exclude (one attempt says little)."""
    recheck_after: int = Field(1000, ge=1)
    """An excluded task becomes eligible again after this many more tasks have been handed out;
    if its next group is uniform again it is excluded again."""


class DatasetPoolConfig(ConfigModel):
    """Tasks from a JSON Lines file: one object per line."""

    type: Literal["dataset"] = "dataset"
    """Pool kind."""
    env: str = Field(..., min_length=1)
    """Environment the tasks belong to."""
    path: str = Field(..., min_length=1)
    """The JSONL file."""
    split: str = "train"
    """Only rows whose `split` field equals this (rows without the field count as this split)."""
    id_field: str = "id"
    """Field holding the task id (unique within the environment)."""
    difficulty_field: str = "difficulty"
    """Field holding the numeric difficulty (missing: 0)."""
    preview_field: str = "prompt"
    """Field shown as the task's preview."""
    reference_field: str = "reference"
    """Field holding the ground truth (returned only when a caller asks for references)."""


class EnvServicePool(ConfigModel):
    """Tasks of environments registered at the env service (its ListTasks)."""

    type: Literal["env-service"] = "env-service"
    """Pool kind."""
    address: str = Field("127.0.0.1:50051", min_length=1)
    """`host:port` of the env service (OUTRIDER_ENV_ADDRESS, when set, wins)."""
    envs: list[str] = Field(default_factory=list)
    """Environments to take tasks from; empty: every registered one."""
    split: str = "train"
    """Task split to practise."""
    page_size: int = Field(1000, ge=1, le=100_000)
    """Tasks per ListTasks call."""
    connect_timeout_s: float = Field(60.0, gt=0)
    """How long start-up waits for the env service."""


PoolConfig = Annotated[DatasetPoolConfig | EnvServicePool, Field(discriminator="type")]


class CurriculumServiceConfig(ConfigModel):
    kind: Literal["curriculum"] = "curriculum"
    """Config kind marker (lets `outrider config validate` pick the model)."""
    server: ServerConfig = ServerConfig()
    """gRPC server settings."""
    redis: RedisConfig = RedisConfig()
    """Where per-task statistics persist (null URL: an embedded server, state lost on exit)."""
    key_prefix: str = Field("outrider:curriculum", min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    """Prefix of the Redis keys; give each run its own so runs do not share statistics."""
    strategy: StrategyConfig = LearnabilityStrategy()
    """How tasks are weighted."""
    exclusion: ExclusionConfig = ExclusionConfig()
    """DAPO-style exclusion of tasks that gave no signal (all correct / all wrong)."""
    env_weights: dict[str, Annotated[float, Field(ge=0, le=1e6)]] = Field(default_factory=dict)
    """Share of each environment in a batch (normalized over environments with tasks);
    environments not listed get weight 1."""
    pools: list[PoolConfig] = Field(default_factory=lambda: [EnvServicePool()], min_length=1)
    """Where the tasks come from (default: every environment of the env service)."""
    seed: int = Field(0, ge=0)
    """Seed of the sampler (restored from Redis on restart)."""
    success_threshold: float = 1.0
    """An attempt passes when its reward is at least this."""
    window: int = Field(16, ge=1, le=1024)
    """Pass rates use each task's last this-many attempts."""
    max_tasks_per_call: int = Field(4096, ge=1)
    """Largest n of one NextTasks call."""

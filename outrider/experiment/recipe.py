"""Recipes: a base run config per scale and arms that differ from it only in named keys.

    name: entropy-collapse
    question: Does GRPO's token entropy collapse, and which control keeps it up?
    metrics: [{key: entropy, label: token entropy (nats)}, ...]
    scales:
      tiny: {config: {...an inline run config...}, seeds: 1}
      cpu:  {config: ../grpo-math.yaml, seeds: 3, overrides: [learner.max_steps=30]}
    arms:
      grpo: {}
      clip-cov: {learner.algorithm.policy_loss: {name: clip_cov}}

An arm maps dotted keys (those of `outrider train`'s KEY=VALUE overrides,
outrider.config.overrides) to values; expanding a recipe applies them to the scale's
base config, so every key is checked against the config models and every value
validated (an unknown key or algorithm name is an error naming it and the arm). The
harness sets `name` (seed-S), `output_dir` (OUT/ARM) and `seed` (S) itself: arms may
not name them. A config given as a path, and relative `env.spec_files` entries, are
read relative to the file that names them (the recipe, or that config).

`type: surrogate` recipes (surrogate-toy) have no model and no arms: their
`surrogate` section parametrises outrider.experiment.surrogate.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from outrider.config import ConfigError, ConfigModel, RunConfig, parse_config, read_yaml
from outrider.config.base import parse_model
from outrider.config.overrides import parse_override
from outrider.experiment.surrogate import SurrogateConfig

RECIPES_DIR = Path(__file__).resolve().parents[2] / "examples" / "experiments"
ScaleName = Literal["tiny", "cpu", "gpu"]
HARNESS_KEYS = ("name", "output_dir", "seed")
ARM_NAME = r"^[a-z0-9][a-z0-9-]{0,39}$"


class MetricSpec(ConfigModel):
    key: str = Field(..., min_length=1)
    """A key of the runs' metrics.jsonl (`entropy`, `reward_mean`, `actor/logp_adv_cov`)."""
    label: str = ""
    """Axis label in the report (the key when empty)."""


class ScaleSpec(ConfigModel):
    config: str | dict[str, Any]
    """The base run config: a path (relative to the recipe file) or the config inline."""
    seeds: int = Field(1, ge=1, le=64)
    """Seeds per arm when `--seeds` is not given."""
    overrides: list[str] = Field(default_factory=list)
    """KEY=VALUE overrides of the base, for every arm at this scale (a smaller budget, ...)."""
    about: str = ""
    """What this scale is and what it costs, for the report and `--help`."""


class TrainRecipe(ConfigModel):
    type: Literal["train"] = "train"
    """Arms of `outrider train` runs."""
    name: str = Field(..., pattern=ARM_NAME)
    """The recipe's name (its file is examples/experiments/NAME.yaml)."""
    question: str = Field(..., min_length=1)
    """The question the experiment asks."""
    finding: str = ""
    """The published finding it checks, with the papers."""
    metrics: list[MetricSpec] = Field(..., min_length=1)
    """Per-step curves of every arm on one plot per metric, and their final values in the table."""
    scales: dict[ScaleName, ScaleSpec] = Field(..., min_length=1)
    """The base run config of each scale."""
    arms: dict[str, dict[str, Any]] = Field(..., min_length=1)
    """Arm name -> {dotted key: value}; `{}` is the base config itself. The first arm is the reference."""

    @field_validator("arms")
    @classmethod
    def _arm_names(cls, arms: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for arm, keys in arms.items():
            if not re.match(ARM_NAME, arm):
                raise ValueError(f"arm name {arm!r} must match {ARM_NAME} (it names a folder)")
            taken = [k for k in keys if k.split(".")[0].split("[")[0] in HARNESS_KEYS]
            if taken:
                raise ValueError(f"arm {arm!r} sets {', '.join(taken)}: the harness sets {', '.join(HARNESS_KEYS)} per arm and seed")
        return arms


class SurrogateRecipe(ConfigModel):
    type: Literal["surrogate"]
    """The closed-form toy of outrider.experiment.surrogate (no model, seconds)."""
    name: str = Field(..., pattern=ARM_NAME)
    """The recipe's name (its file is examples/experiments/NAME.yaml)."""
    question: str = Field(..., min_length=1)
    """The question the experiment asks."""
    finding: str = ""
    """The published finding it relates to."""
    surrogate: SurrogateConfig = SurrogateConfig()
    """The toy's objective, runs and grids."""


@dataclass(frozen=True)
class LoadedRecipe:
    """A validated recipe and the file it came from (relative paths are read from there)."""

    recipe: TrainRecipe | SurrogateRecipe
    path: Path


@dataclass(frozen=True)
class ArmRun:
    """One arm × seed: the validated run config and where it runs."""

    arm: str
    seed: int
    overrides: tuple[str, ...]
    """The arm's own KEY=VALUE overrides (what distinguishes it)."""
    config: RunConfig

    @property
    def run_dir(self) -> Path:
        return self.config.run_dir

    @property
    def config_path(self) -> Path:
        """The run's effective config, written next to its run folder (OUT/ARM/seed-S.yaml)."""
        return self.run_dir.with_name(self.run_dir.name + ".yaml")


def recipe_path(name_or_path: str) -> Path:
    """A recipe file: a path as given, else examples/experiments/NAME.yaml."""
    given = Path(name_or_path)
    if given.suffix in (".yaml", ".yml") or given.exists():
        return given
    path = RECIPES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")) if RECIPES_DIR.is_dir() else []
        raise ConfigError(name_or_path, [("<recipe>", f"no recipe {name_or_path!r}; shipped recipes: {', '.join(known) or 'none'} (or give a YAML path)")])
    return path


def load_recipe(name_or_path: str | Path, check: bool = True) -> LoadedRecipe:
    """Read and validate a recipe; with `check`, expand every scale × arm once (seed 0) so a
    bad key or algorithm name fails here, naming its arm."""
    path = recipe_path(str(name_or_path))
    data = read_yaml(path)
    if isinstance(data, dict):
        data.setdefault("type", "train")
    model = SurrogateRecipe if isinstance(data, dict) and data.get("type") == "surrogate" else TrainRecipe
    recipe = parse_model(model, data, str(path))  # ConfigError with the field paths
    loaded = LoadedRecipe(recipe, path)
    if check and isinstance(recipe, TrainRecipe):
        for scale in recipe.scales:
            expand(loaded, scale, seeds=1, out=Path("<out>"))
    return loaded


def arm_overrides(arm_keys: dict[str, Any]) -> tuple[str, ...]:
    """{dotted key: value} -> KEY=VALUE texts; the value as JSON, which YAML reads back as it was."""
    return tuple(f"{key}={json.dumps(value)}" for key, value in arm_keys.items())


def base_data(loaded: LoadedRecipe, scale: ScaleName) -> dict:
    """The scale's base run config as data, relative spec files resolved."""
    recipe = loaded.recipe
    assert isinstance(recipe, TrainRecipe)
    if scale not in recipe.scales:
        raise ConfigError(str(loaded.path), [("scales", f"no scale {scale!r}; this recipe has {', '.join(recipe.scales)}")])
    given = recipe.scales[scale].config
    if isinstance(given, str):
        config_path = (loaded.path.parent / given).resolve()
        data = read_yaml(config_path)
        folder = config_path.parent
    else:
        data = copy.deepcopy(given)
        folder = loaded.path.parent.resolve()
    if not isinstance(data, dict):
        raise ConfigError(str(loaded.path), [(f"scales.{scale}.config", "is not a mapping (a run config)")])
    env = data.get("env")
    if isinstance(env, dict) and isinstance(env.get("spec_files"), list):
        env["spec_files"] = [p if Path(str(p)).is_absolute() else str((folder / str(p)).resolve()) for p in env["spec_files"]]
    return data


def expand(
    loaded: LoadedRecipe,
    scale: ScaleName,
    seeds: int | None,
    out: Path,
    overrides: tuple[str, ...] | list[str] = (),
    arms: list[str] | None = None,
) -> list[ArmRun]:
    """Every chosen arm × seed 0..seeds−1 as a validated run config (ConfigError naming the
    arm and the key on a problem). `overrides` (the command line's) apply to every arm and may
    not set a key an arm names: that would erase the difference the experiment measures."""
    recipe = loaded.recipe
    if not isinstance(recipe, TrainRecipe):
        raise ConfigError(str(loaded.path), [("type", f"{recipe.type!r} recipes have no arms to expand")])
    base = base_data(loaded, scale)
    spec = recipe.scales[scale]
    chosen = list(recipe.arms) if arms is None else arms
    unknown = [a for a in chosen if a not in recipe.arms]
    if unknown:
        raise ConfigError(str(loaded.path), [("arms", f"no arm {', '.join(map(repr, unknown))}; arms: {', '.join(recipe.arms)}")])
    arm_keys = {parse_override(f"{k}=x", str(loaded.path)).key for keys in recipe.arms.values() for k in keys}
    for text in overrides:
        key = parse_override(text).key
        clash = [k for k in arm_keys if k == key or k.startswith(key + ".") or key.startswith(k + ".")]
        if clash:
            raise ConfigError("command line", [(key, f"override {text!r} sets {', '.join(clash)}, which an arm of {recipe.name} names")])
    count = seeds if seeds is not None else spec.seeds
    runs = []
    for arm in chosen:
        own = arm_overrides(recipe.arms[arm])
        source = f"{loaded.path} (arm {arm!r}, scale {scale!r})"
        for seed in range(count):
            data = copy.deepcopy(base)
            data.update(name=f"seed-{seed}", output_dir=str(Path(out) / arm), seed=seed)
            config = parse_config(data, source, [*spec.overrides, *overrides, *own])
            if not isinstance(config, RunConfig):
                raise ConfigError(source, [("kind", f"is {config.kind!r}; an experiment arm needs a run config")])
            runs.append(ArmRun(arm, seed, own, config))
    return runs

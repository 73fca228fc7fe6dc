"""Outrider's configuration: pydantic models loaded from YAML.

Light on purpose (no ML imports): services, CLI and tests import it freely.
A YAML file names its model with a top-level `kind` (`run` when absent).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from outrider.config.base import ConfigError, ConfigModel, dump_yaml, load_model, parse_model, read_yaml
from outrider.config.common import BusConfig, LogConfig, RedisConfig, ServerConfig
from outrider.config.curriculum import CurriculumServiceConfig
from outrider.config.env import EnvServiceConfig
from outrider.config.offline import DPOConfig, SFTConfig
from outrider.config.overrides import annotate, apply_overrides, is_override
from outrider.config.policy import PolicyServiceConfig
from outrider.config.reward import RewardServiceConfig
from outrider.config.run import SERVICE_NAMES, RunConfig, StackConfig

# A service's config model is the type of its RunConfig section (SERVICE_NAMES, the one list).
SERVICE_CONFIGS: dict[str, type[ConfigModel]] = {name: RunConfig.model_fields[name].annotation for name in SERVICE_NAMES}

CONFIG_KINDS: dict[str, type[ConfigModel]] = {"run": RunConfig, **SERVICE_CONFIGS, "sft": SFTConfig, "dpo": DPOConfig}


def _model_of(data, source: str) -> type[ConfigModel]:
    kind = data.get("kind", "run") if isinstance(data, dict) else "run"
    model = CONFIG_KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ConfigError(source, [("kind", f"unknown kind {kind!r}; valid kinds: {', '.join(CONFIG_KINDS)}")])
    return model


def parse_config(data, source: str = "<config>", overrides: Sequence[str] = ()) -> ConfigModel:
    """Validate parsed YAML as the model its `kind` names, after the command line's
    `KEY=VALUE` overrides (outrider.config.overrides)."""
    return _parse_overridden(_model_of(data, source), data, source, overrides)


def _parse_overridden(model: type[ConfigModel], data, source: str, overrides: Sequence[str]) -> ConfigModel:
    if not overrides:
        return parse_model(model, data, source)
    data = apply_overrides(data, overrides, model, source)
    try:
        return parse_model(model, data, source)
    except ConfigError as exc:
        raise annotate(exc, overrides) from None


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ConfigModel:
    """Load any Outrider config file (run or service config), with `KEY=VALUE` overrides."""
    return parse_config(read_yaml(path), str(path), overrides)


def load_service_config(service: str, path: str | Path | None, overrides: Sequence[str] = ()):
    """The config of one service, from its own file or from a run config's section.
    Override keys are paths in the file given (`policy.model` in a run config), or in
    the service's config when there is no file."""
    if service not in SERVICE_CONFIGS:
        raise ConfigError(str(path), [("service", f"unknown service {service!r}; valid: {', '.join(SERVICE_CONFIGS)}")])
    if path is None:
        return _parse_overridden(SERVICE_CONFIGS[service], {}, "<defaults>", overrides)
    try:
        config = load_config(path, overrides)
    except ConfigError as exc:
        if not exc.problems or not all(_unset_elsewhere(problem, service) for problem in exc.problems):
            raise
        # A run config names variables only some pods are given: the Helm chart hands the
        # Redis password (OUTRIDER_REDIS_PASSWORD, in `redis.url` and other sections) only
        # to the pods that use Redis, not to the env and reward services. A reference the
        # service's own section does not make is not its concern: it reads its section alone.
        return _section_of_run(service, path, overrides)
    if isinstance(config, RunConfig):
        return getattr(config, service)
    if config.kind != service:
        raise ConfigError(str(path), [("kind", f"is {config.kind!r}, but the {service} service needs {service!r} or 'run'")])
    return config


# outrider.config.common's message for a `${NAME}` whose variable is not set.
_UNSET_VARIABLE = re.compile(r"names the environment variable [A-Za-z_][A-Za-z0-9_]*, which is not set")


def _unset_elsewhere(problem: tuple[str, str], service: str) -> bool:
    path, message = problem
    return not (path == service or path.startswith(f"{service}.")) and bool(_UNSET_VARIABLE.search(message))


def _section_of_run(service: str, path: str | Path, overrides: Sequence[str]) -> ConfigModel:
    data = read_yaml(path)
    if overrides:
        data = apply_overrides(data, overrides, RunConfig, str(path))
    try:
        return parse_model(SERVICE_CONFIGS[service], data.get(service) or {}, str(path))
    except ConfigError as exc:
        raise ConfigError(exc.source, [(f"{service}.{field}", message) for field, message in exc.problems]) from None


__all__ = [
    "BusConfig",
    "CONFIG_KINDS",
    "ConfigError",
    "ConfigModel",
    "CurriculumServiceConfig",
    "DPOConfig",
    "EnvServiceConfig",
    "LogConfig",
    "PolicyServiceConfig",
    "RedisConfig",
    "RewardServiceConfig",
    "RunConfig",
    "SFTConfig",
    "SERVICE_CONFIGS",
    "SERVICE_NAMES",
    "ServerConfig",
    "StackConfig",
    "dump_yaml",
    "is_override",
    "load_config",
    "load_model",
    "load_service_config",
    "parse_config",
]

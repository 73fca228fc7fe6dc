"""Base of every Outrider config model and the YAML loader.

Config models are pydantic, one per service plus a run config. Every field has a
default, bounds where they make sense, and a docstring (pydantic turns attribute
docstrings into field descriptions, so `outrider config schema` and the docs show
them). Unknown fields are errors: a typo never silently becomes a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigModel(BaseModel):
    """Strict base: unknown fields are rejected, defaults are validated too."""

    model_config = ConfigDict(
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=True,
        validate_assignment=True,
    )


class ConfigError(ValueError):
    """A config file or value is invalid. `problems` lists (field path, message)."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = [f"{source}: invalid configuration"]
        lines += [f"  {path}: {message}" for path, message in problems]
        super().__init__("\n".join(lines))


def _field_path(location: tuple[Any, ...]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "<root>"


def validation_problems(error: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    """Turn a pydantic error into (dotted field path, message) pairs."""
    problems = []
    for item in error.errors(include_url=False):
        location = tuple(part for part in item["loc"] if not _is_union_tag(part))
        path = _field_path(location)
        if prefix:
            path = f"{prefix}.{path}" if path != "<root>" else prefix
        message = item["msg"]
        scalar_input = not isinstance(item.get("input"), (dict, list, BaseModel))
        if item["type"] not in ("missing", "extra_forbidden") and "input" in item and scalar_input:
            message += f" (got {item['input']!r})"
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        problems.append((path, message))
    return problems


def _is_union_tag(part: Any) -> bool:
    # pydantic inserts the discriminator value or the model name of a union
    # member into error locations ("grpo", "function-after[...]"); the user's
    # YAML has no such level.
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file, turning syntax errors into ConfigError with the line."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), [("<file>", exc.strerror or str(exc))]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<file>"
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), [(where, f"YAML syntax error: {reason}")]) from None


def parse_model(model: type[M], data: Any, source: str = "<config>") -> M:
    """Validate already-parsed data against `model`, raising ConfigError."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [("<root>", f"expected a mapping, got {type(data).__name__}")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, validation_problems(exc)) from None


def load_model(model: type[M], path: str | Path) -> M:
    """Read a YAML file and validate it as `model`."""
    return parse_model(model, read_yaml(path), source=str(path))


def dump_yaml(config: BaseModel) -> str:
    """Serialize a config back to YAML (round-trips through load_model)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)

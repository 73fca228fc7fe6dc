"""Command-line overrides: `KEY=VALUE` arguments applied to a config file before it is validated.

    outrider train examples/grpo-math.yaml learner.optimizer.lr=3e-6 rollout.group_size=16

KEY is a dotted path of field names as the YAML file spells them; list items are
numbered from 0 (`curriculum.pools.0.page_size` or `curriculum.pools[0].page_size`), and
a dict's keys are written like fields (`stack.addresses.policy=host:50051`). VALUE is
read as a YAML value (`16`, `3e-6`, `true`, `null`, `[math, code]`, `{a: 1}`); where the
field takes text, the text is taken as given (`name=2024` is the string "2024", `x=on`
is "on"), an empty VALUE is the empty string, and elsewhere `3e-6` is a number (PyYAML
alone would read it as text). Everything after the first `=` is the value, so values
may contain `=`.

Each key is checked against the config models before anything is validated: an
unknown field is reported with its path and the closest field names (difflib).
The overridden data is then validated like the file itself, and a problem at (or
under) an overridden key names the override it came from. Later overrides of the
same key win. The result is the run's effective config; commands that write one
(`outrider train`: RUN_DIR/run.yaml) record the overridden values there.

A section the file leaves out is filled from its default before a key below it is
set, so `optimizer.grad_clip=0.5` keeps the section's other defaults (a default such
as `OptimizerConfig(lr=1e-5)` included), rather than falling back to the class's.
"""

from __future__ import annotations

import copy
import difflib
import re
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from outrider.config.base import ConfigError

_PART = re.compile(r"[^.\[\]]+|\[(\d+)\]")
_EXPONENT_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
_KEY = re.compile(r"^[A-Za-z0-9_-]+(\[\d+\])*(\.[A-Za-z0-9_-]+(\[\d+\])*)*$")


@dataclass(frozen=True)
class Override:
    """One `KEY=VALUE` argument, parsed."""

    text: str
    """The argument as given."""
    path: tuple[str | int, ...]
    """KEY split into field names and list indexes."""
    raw: str
    """VALUE as given (everything after the first `=`)."""

    @property
    def key(self) -> str:
        """KEY in the form validation errors use: `curriculum.pools[0].weight`."""
        return key_of(self.path)


def key_of(path: Sequence[str | int]) -> str:
    key = ""
    for part in path:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else part)
    return key


def is_override(argument: str) -> bool:
    """Whether a command-line argument is meant as KEY=VALUE (a dotted key before the first `=`)."""
    key, sep, _ = argument.partition("=")
    return bool(sep) and bool(_KEY.match(key.strip()))


def parse_override(text: str, source: str = "command line") -> Override:
    """`KEY=VALUE` -> Override; ConfigError naming the argument when it is not of that form."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not _KEY.match(key):
        raise ConfigError(source, [(key or text, f"override {text!r}: expected KEY=VALUE with a dotted KEY, e.g. learner.optimizer.lr=3e-6")])
    path: list[str | int] = []
    for match in _PART.finditer(key):
        index = match.group(1)
        if index is not None:
            path.append(int(index))
        else:
            name = match.group(0)
            path.append(int(name) if name.isdigit() else name)
    if path[0] == "kind":
        raise ConfigError(source, [("kind", f"override {text!r}: the kind of a config is set in its file, not on the command line")])
    return Override(text=text, path=tuple(path), raw=raw)


def apply_overrides(data: Any, overrides: Sequence[str | Override], model: type[BaseModel], source: str) -> dict:
    """A copy of `data` (a config file's parsed YAML) with every override set, each key checked
    against `model` and each value typed by the field it sets. Raises ConfigError."""
    data = copy.deepcopy(data) if data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError(source, [("<root>", f"expected a mapping, got {type(data).__name__}")])
    parsed = [o if isinstance(o, Override) else parse_override(o, source) for o in overrides]
    try:
        base: BaseModel | None = model.model_validate(data)
    except ValidationError:
        # The file alone is invalid (an override may mend it): sections it leaves out
        # start from the class defaults, and validation below reports what remains.
        base = None
    for override in parsed:
        _apply(data, override, model, base, source)
    return data


def annotate(error: ConfigError, overrides: Sequence[str | Override]) -> ConfigError:
    """`error` with every problem at, under or above an overridden key naming that override."""
    parsed = [o if isinstance(o, Override) else parse_override(o, error.source) for o in overrides]
    problems = []
    for path, message in error.problems:
        origin = [o.text for o in parsed if _related(path, o.key)]
        if origin:
            message += f" (command line: {', '.join(origin)})"
        problems.append((path, message))
    return ConfigError(error.source, problems)


def _related(problem: str, key: str) -> bool:
    if problem == "<root>":
        return False
    return any(a == b or b.startswith(a + ".") or b.startswith(a + "[") for a, b in ((problem, key), (key, problem)))


# -- setting one key --------------------------------------------------------------


def _apply(data: dict, override: Override, model: type[BaseModel], base: Any, source: str) -> None:
    node: Any = data
    annotation: Any = model
    for i, part in enumerate(override.path):
        annotation = _child_annotation(annotation, part, node, override, i, source)
        if not isinstance(node, (dict, list)):
            here = key_of(override.path[:i])
            raise ConfigError(source, [(here, f"is {node!r}, not a section (override {override.text!r})")])
        if isinstance(node, dict) and isinstance(part, int):
            part = str(part)  # a dict's key that happens to be a number
        base = _base_child(base, part)
        if i == len(override.path) - 1:
            _get(node, part, override, i, source)  # the container is of the key's kind
            node[part] = _typed_value(override, annotation, source)
            return
        child = _get(node, part, override, i, source)
        if child is None:
            child = _materialize(base, override, i + 1, source)
            node[part] = child
        node = child


def _get(node: Any, part: str | int, override: Override, i: int, source: str) -> Any:
    if isinstance(part, int):
        if not isinstance(node, list) or part >= len(node):
            length = len(node) if isinstance(node, list) else 0
            raise ConfigError(source, [(
                key_of(override.path[: i + 1]),
                f"no item {part}: {key_of(override.path[:i])} has {length} (override {override.text!r}; "
                "to set the whole list, give it as the value: KEY=[a, b])",
            )])
        return node[part]
    if not isinstance(node, dict):
        raise ConfigError(source, [(key_of(override.path[: i + 1]), f"{key_of(override.path[:i])} is a list: give an item's number (override {override.text!r})")])
    return node.get(part)


def _base_child(base: Any, part: str | int) -> Any:
    if base is None:
        return None
    if isinstance(part, int):
        return base[part] if isinstance(base, (list, tuple)) and part < len(base) else None
    if isinstance(base, BaseModel):
        return getattr(base, part, None) if part in type(base).model_fields else None
    if isinstance(base, dict):
        return base.get(part)
    return None


def _materialize(base: Any, override: Override, next_index: int, source: str) -> Any:
    """A section the file leaves out, as its default: the values its default was built
    with (and every discriminator tag), so the fields not overridden keep them."""
    if base is None:
        if isinstance(override.path[next_index], int):
            key = key_of(override.path[:next_index])
            raise ConfigError(source, [(key, f"is not in the file; give the whole list as the value: {key}=[...] (override {override.text!r})")])
        return {}
    return _explicit(base)


def _explicit(value: Any) -> Any:
    if isinstance(value, BaseModel):
        dumped = value.model_dump(mode="json")
        fields = type(value).model_fields
        kept = {
            name for name, field in fields.items()
            if name in value.model_fields_set or get_origin(field.annotation) is Literal
        }
        return {name: _explicit_json(getattr(value, name), dumped[name]) for name in fields if name in kept}
    if isinstance(value, (list, tuple)):
        return [_explicit(item) for item in value]
    if isinstance(value, dict):
        return {key: _explicit(item) for key, item in value.items()}
    return value


def _explicit_json(value: Any, dumped: Any) -> Any:
    return _explicit(value) if isinstance(value, (BaseModel, list, tuple, dict)) else dumped


# -- the annotation of a key ---------------------------------------------------------


def _members(annotation: Any) -> tuple[list[Any], str | None]:
    """The alternatives of an annotation (Optional/Union/Annotated flattened, None left
    out) and the discriminator field of a tagged union, if any."""
    discriminator = None
    while get_origin(annotation) is Annotated:
        args = get_args(annotation)
        annotation = args[0]
        for meta in args[1:]:
            if isinstance(meta, FieldInfo) and isinstance(meta.discriminator, str):
                discriminator = meta.discriminator
    if get_origin(annotation) in (Union, types.UnionType):
        members: list[Any] = []
        for arg in get_args(annotation):
            inner, inner_discriminator = _members(arg)
            members += inner
            discriminator = discriminator or inner_discriminator
        return members, discriminator
    return ([] if annotation is type(None) else [annotation]), discriminator


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _tag_values(model: type[BaseModel], discriminator: str) -> tuple:
    field = model.model_fields.get(discriminator)
    return get_args(field.annotation) if field is not None else ()


def _child_annotation(annotation: Any, part: str | int, node: Any, override: Override, i: int, source: str) -> Any:
    members, discriminator = _members(annotation)
    if any(m is Any for m in members):
        return Any
    here = key_of(override.path[:i]) or "<root>"
    if isinstance(part, int):
        for member in members:
            args = get_args(member)
            if get_origin(member) in (list, tuple):
                return args[0] if args else Any
            if get_origin(member) is dict:
                return args[1] if len(args) == 2 else Any
        raise ConfigError(source, [(key_of(override.path[: i + 1]), f"{here} is not a list (override {override.text!r})")])
    models = [m for m in members if _is_model(m)]
    if models:
        if discriminator and isinstance(node, dict) and node.get(discriminator) is not None:
            tagged = [m for m in models if node[discriminator] in _tag_values(m, discriminator)]
            models = tagged or models
        owners = [m for m in models if part in m.model_fields]
        if owners:
            field = owners[0].model_fields[part]
            inner = field.annotation
            if field.discriminator and isinstance(field.discriminator, str):
                inner = Annotated[inner, FieldInfo(discriminator=field.discriminator)]
            return inner
        names = sorted({name for m in models for name in m.model_fields})
        close = difflib.get_close_matches(part, names, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(close)}?" if close else f"fields of {here}: {', '.join(names)}"
        raise ConfigError(source, [(key_of(override.path[: i + 1]), f"unknown field (override {override.text!r}); {hint}")])
    for member in members:
        if get_origin(member) is dict:
            args = get_args(member)
            return args[1] if len(args) == 2 else Any
    kind = "/".join(getattr(m, "__name__", str(m)) for m in members) or "null"
    raise ConfigError(source, [(key_of(override.path[: i + 1]), f"{here} is a value ({kind}), it has no field {part!r} (override {override.text!r})")])


# -- the value -------------------------------------------------------------------------


def _accepts_text(annotation: Any) -> bool:
    members, _ = _members(annotation)
    for member in members:
        if member is str:
            return True
        if get_origin(member) is Literal and any(isinstance(v, str) for v in get_args(member)):
            return True
    return False


def _typed_value(override: Override, annotation: Any, source: str) -> Any:
    try:
        value = yaml.safe_load(override.raw)
    except yaml.YAMLError as exc:
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [(override.key, f"override {override.text!r}: VALUE is not valid YAML: {reason}")]) from None
    if _accepts_text(annotation):
        # YAML 1.1 reads `on`, `2024`, `1:30` as bool/int; a text field means the text.
        if isinstance(value, (bool, int, float)):
            return override.raw.strip()
        if value is None and override.raw.strip() == "":
            return ""
    elif isinstance(value, str) and _EXPONENT_FLOAT.match(value):
        # ... and `3e-6` (no dot) as text: a number where the field is not text (YAML 1.2's
        # reading), also in free-form fields such as an algorithm's `params`.
        return float(value)
    return value

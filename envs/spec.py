"""EnvSpec messages from YAML, validation with field paths, and defaults.

A spec file is the YAML form of an `outrider.v1.EnvSpec` (field names as in
env.proto). A Python environment:

    name: math-easy
    version: 1.0.0
    python: {entry_point: "outrider.envs.builtin.math_env:MathEnv"}
    max_turns: 3
    params: {difficulty: 0}          # values become strings

A remote one (any language; it serves outrider.v1.EnvService):

    name: counter
    remote: {address: "127.0.0.1:50071", timeout_s: 5}

A server of the OpenEnv ecosystem (reset/step over HTTP; rules in `outrider.envs.openenv`):

    name: echo
    openenv: {base_url: "http://127.0.0.1:8000", action_field: message, seed_tasks: {train: 100}}

Problems are reported as (field path, message) pairs, all at once.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from pydantic import ValidationError

from outrider.config.base import ConfigError, read_yaml, validation_problems
from outrider.config.env import ENV_NAME_PATTERN, SandboxLimitsConfig
from outrider.envs import openenv
from outrider.envs.agent import spec as agent_spec
from outrider.proto import jsontext
from outrider.proto.v1 import env_pb2

NAME_RE = re.compile(ENV_NAME_PATTERN)
ENTRY_POINT_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
TOOL_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ADDRESS_RE = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")
DEFAULT_VERSION = "0.0.0"
DEFAULT_MAX_TURNS = 10
MAX_TURNS_LIMIT = 1000
MAX_PARAMS = 64
MAX_TEXT = 4096


class SpecError(ConfigError):
    """An EnvSpec is invalid; `problems` lists (field path, message)."""


def spec_from_dict(data: Any, source: str = "<spec>") -> env_pb2.EnvSpec:
    """Parse and validate the YAML/JSON form of an EnvSpec (defaults filled in)."""
    if not isinstance(data, dict):
        raise SpecError(source, [("<root>", f"expected a mapping, got {type(data).__name__}")])
    data = dict(data)
    problems = []
    if isinstance(data.get("params"), dict):
        params = {}
        for key, value in data["params"].items():
            if isinstance(value, (dict, list)) or value is None:
                problems.append((f"params.{key}", "must be a scalar (it is passed to the environment as a string)"))
            else:
                params[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
        data["params"] = params
    problems += shape_problems(data, env_pb2.EnvSpec.DESCRIPTOR)
    if problems:
        raise SpecError(source, problems)
    spec = env_pb2.EnvSpec()
    try:
        json_format.ParseDict(data, spec)
    except json_format.ParseError as exc:  # what shape_problems does not foresee; the message names the field
        raise SpecError(source, [("<spec>", str(exc))]) from None
    return checked(spec, source)


_INTEGERS = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOATS = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)


def shape_problems(data: dict, descriptor: Descriptor, prefix: str = "") -> list[tuple[str, str]]:
    """Unknown fields and wrongly typed values of the YAML form of a message, every one
    with its path in the proto's snake_case names (`sandbox.wall_time_s`, `tools[1].name`),
    as the YAML spells them. json_format would stop at the first, name it in camelCase
    (`maxTurns`) and accept camelCase keys; a spec file has one spelling."""
    problems: list[tuple[str, str]] = []
    fields = {field.name: field for field in descriptor.fields}
    camel = {field.json_name: field.name for field in descriptor.fields}
    oneofs: dict[str, list[str]] = {}
    for key, value in data.items():
        key = str(key)
        path = f"{prefix}{key}"
        field = fields.get(key)
        if field is None:
            hint = f"did you mean {camel[key]!r}? (field names are snake_case, as in the proto)" if key in camel else f"valid: {', '.join(fields)}"
            problems.append((path, f"unknown field; {hint}"))
            continue
        if field.containing_oneof is not None:
            oneofs.setdefault(field.containing_oneof.name, []).append(key)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            if not isinstance(value, dict):
                problems.append((path, f"must be a mapping, got {_kind(value)}"))
                continue
            value_field = field.message_type.fields_by_name["value"]
            for name, item in value.items():
                problems += _value_problems(value_field, item, f"{path}.{name}")
        elif field.is_repeated:
            if not isinstance(value, list):
                problems.append((path, f"must be a list, got {_kind(value)}"))
                continue
            for i, item in enumerate(value):
                problems += _value_problems(field, item, f"{path}[{i}]")
        else:
            problems += _value_problems(field, value, path)
    for oneof, keys in oneofs.items():
        if len(keys) > 1:
            problems.append((f"{prefix}{keys[-1]}", f"set together with {', '.join(keys[:-1])}; `{oneof}` is one of them"))
    return problems


def _kind(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"


def _value_problems(field: FieldDescriptor, value: Any, path: str) -> list[tuple[str, str]]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if not isinstance(value, dict):
            return [(path, f"must be a mapping, got {_kind(value)}")]
        return shape_problems(value, field.message_type, f"{path}.")
    if field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
        return [] if isinstance(value, str) else [(path, f"must be a string, got {_kind(value)} (quote it in YAML)")]
    if field.type == FieldDescriptor.TYPE_BOOL:
        return [] if isinstance(value, bool) else [(path, f"must be true or false, got {_kind(value)}")]
    if field.type in _INTEGERS:
        low, high = _INTEGERS[field.type]
        if isinstance(value, bool) or not isinstance(value, int):
            return [(path, f"must be a whole number, got {_kind(value)}")]
        return [] if low <= value <= high else [(path, f"{value} is out of range [{low}, {high}]")]
    if field.type in _FLOATS:
        return [] if isinstance(value, (int, float)) and not isinstance(value, bool) else [(path, f"must be a number, got {_kind(value)}")]
    if field.type == FieldDescriptor.TYPE_ENUM:
        names = [v.name for v in field.enum_type.values]
        return [] if value in names else [(path, f"{value!r} is not one of {', '.join(names)}")]
    return []


def load_spec_file(path: str | Path) -> env_pb2.EnvSpec:
    """Read a YAML spec file; SpecError (a ConfigError) lists every problem. An agent's
    relative `directory` is relative to the file's folder."""
    data = read_yaml(path)
    agent = data.get("agent") if isinstance(data, dict) else None
    if isinstance(agent, dict) and isinstance(agent.get("directory"), str) and not Path(agent["directory"]).is_absolute():
        agent["directory"] = str((Path(path).resolve().parent / agent["directory"]).resolve())
    return spec_from_dict(data, str(path))


def spec_to_dict(spec: env_pb2.EnvSpec) -> dict:
    return json_format.MessageToDict(spec, preserving_proto_field_name=True)


def checked(spec: env_pb2.EnvSpec, source: str = "<spec>") -> env_pb2.EnvSpec:
    """A copy of `spec` with defaults filled in; SpecError if it is invalid."""
    problems = validate_spec(spec)
    if problems:
        raise SpecError(source, problems)
    return with_defaults(spec)


def with_defaults(spec: env_pb2.EnvSpec) -> env_pb2.EnvSpec:
    filled = env_pb2.EnvSpec()
    filled.CopyFrom(spec)
    filled.version = filled.version or DEFAULT_VERSION
    filled.max_turns = filled.max_turns or DEFAULT_MAX_TURNS
    if filled.reward.max_reward == 0:
        filled.reward.max_reward = 1.0
    if filled.WhichOneof("kind") == "openenv":
        openenv.with_openenv_defaults(filled)
    return filled


def validate_spec(spec: env_pb2.EnvSpec) -> list[tuple[str, str]]:
    """Every problem of `spec` as (field path, message); empty when valid."""
    problems: list[tuple[str, str]] = []
    if not NAME_RE.match(spec.name):
        problems.append(("name", f"{spec.name!r} must be 1-64 of lowercase letters, digits, '-', '_', '.' (starting with a letter or digit)"))
    if len(spec.version) > 64:
        problems.append(("version", "longer than 64 characters"))
    if len(spec.description) > MAX_TEXT:
        problems.append(("description", f"longer than {MAX_TEXT} characters"))
    problems += _kind_problems(spec)
    if spec.max_turns > MAX_TURNS_LIMIT:
        problems.append(("max_turns", f"{spec.max_turns} is above the limit of {MAX_TURNS_LIMIT}"))
    problems += _tool_problems(spec)
    problems += _sandbox_problems(spec)
    problems += _reward_problems(spec)
    problems += _unapplied_problems(spec)
    if len(spec.params) > MAX_PARAMS:
        problems.append(("params", f"more than {MAX_PARAMS} entries"))
    for key, value in spec.params.items():
        if not key:
            problems.append(("params", "has an empty key"))
        if len(value) > MAX_TEXT:
            problems.append((f"params.{key}", f"longer than {MAX_TEXT} characters"))
    return problems


def _kind_problems(spec: env_pb2.EnvSpec) -> list[tuple[str, str]]:
    kind = spec.WhichOneof("kind")
    if kind is None:
        return [("kind", "set exactly one of `python` (an entry point), `remote` (an address) or `openenv` (a base URL)")]
    if kind == "python":
        if not ENTRY_POINT_RE.match(spec.python.entry_point):
            return [("python.entry_point", f"{spec.python.entry_point!r} must look like 'package.module:ClassName'")]
        return []
    if kind == "openenv":
        return openenv.openenv_problems(spec)
    if kind == "agent":
        return agent_spec.agent_problems(spec, NAME_RE)
    problems = []
    match = ADDRESS_RE.match(spec.remote.address)
    if match is None or not 1 <= int(match.group(2)) <= 65535:
        problems.append(("remote.address", f"{spec.remote.address!r} must be 'host:port' with a port in 1-65535"))
    if not (math.isfinite(spec.remote.timeout_s) and 0 <= spec.remote.timeout_s <= 3600):
        problems.append(("remote.timeout_s", f"{spec.remote.timeout_s} must be in [0, 3600] (0: the service default)"))
    if spec.remote.env and not NAME_RE.match(spec.remote.env):
        problems.append(("remote.env", f"{spec.remote.env!r} is not a valid environment name"))
    return problems


def _tool_problems(spec: env_pb2.EnvSpec) -> list[tuple[str, str]]:
    problems, seen = [], set()
    for i, tool in enumerate(spec.tools):
        if not TOOL_NAME_RE.match(tool.name):
            problems.append((f"tools[{i}].name", f"{tool.name!r} must be 1-64 of letters, digits, '_', '-'"))
        if tool.name in seen:
            problems.append((f"tools[{i}].name", f"{tool.name!r} appears twice"))
        seen.add(tool.name)
        if tool.parameters_json_schema:
            try:
                schema = jsontext.loads(tool.parameters_json_schema)
            except json.JSONDecodeError as exc:
                problems.append((f"tools[{i}].parameters_json_schema", f"not valid JSON: {exc.msg}"))
                continue
            if not isinstance(schema, dict):
                problems.append((f"tools[{i}].parameters_json_schema", "must be a JSON object"))
    return problems


def _sandbox_problems(spec: env_pb2.EnvSpec) -> list[tuple[str, str]]:
    values = {field.name: value for field, value in spec.sandbox.ListFields()}
    try:
        SandboxLimitsConfig(**values)
    except ValidationError as exc:
        return validation_problems(exc, prefix="sandbox")
    return []


def _reward_problems(spec: env_pb2.EnvSpec) -> list[tuple[str, str]]:
    problems = []
    if not (math.isfinite(spec.reward.max_reward) and spec.reward.max_reward >= 0):
        problems.append(("reward.max_reward", f"{spec.reward.max_reward} must be a finite number >= 0"))
    for i, verifier in enumerate(spec.reward.verifiers):
        if not verifier.name:
            problems.append((f"reward.verifiers[{i}].name", "is empty"))
        if not (math.isfinite(verifier.weight) and verifier.weight >= 0):
            problems.append((f"reward.verifiers[{i}].weight", f"{verifier.weight} must be a finite number >= 0"))
    return problems


def _unapplied_problems(spec: env_pb2.EnvSpec) -> list[tuple[str, str]]:
    """Fields nothing would act on: refused, so that a spec never says more than the
    deployment does (docs/environments.md, "What each field does")."""
    problems = []
    if spec.reward.verifiers:
        problems.append((
            "reward.verifiers",
            "not applied from the spec: the reward service's verifiers (and their weights) are set per "
            "environment in its config (`verifiers: {ENV: [...]}`) and used with rollout.reward.outcome: "
            "reward-service; remove them here",
        ))
    if spec.WhichOneof("kind") == "openenv":
        return problems + openenv.unapplied_problems(spec)
    if spec.WhichOneof("kind") == "agent":
        return problems + agent_spec.agent_unapplied(spec)
    if spec.WhichOneof("kind") != "remote":
        return problems
    if spec.sandbox.ListFields():
        problems.append(("sandbox", "a remote environment runs its code in its own process: the env service's sandbox limits do not reach it; remove them"))
    if spec.params:
        problems.append(("params", "a remote environment is not constructed by the env service (CreateSession carries no params); configure the remote process itself"))
    if spec.tools:
        problems.append(("tools", "a remote environment runs its own tools and states them in its first observation; the env service cannot serve or check them; remove them"))
    return problems

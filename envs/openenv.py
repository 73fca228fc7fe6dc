"""The OpenEnv kind of EnvSpec: its rules, and the mapping between OpenEnv's wire
format and Outrider's Env API. Pure functions; the I/O is the env service's
(`outrider.services.env.openenv`).

An OpenEnv server (the `HTTPEnvServer` of `openenv.core`, or anything that speaks
its format) answers a reset or a step with `{"observation": {...}, "reward": float
| null, "done": bool, "metadata"?: {...}}`. An action is a JSON object of the
environment's action model. The spec says how the two sides meet:

    openenv:
      base_url: "http://127.0.0.1:8000"
      action_field: message                  # the policy's text goes here
      action_template_json: '{"mode": "chat"}'   # fixed fields of every action
      observation_field: echoed_message      # what the policy sees (empty: all, as JSON)
      seed_tasks: {train: 1000, test: 100}   # or tasks: [{id, split, reset_json}]

OpenEnv has no task catalog: a task is a set of reset arguments (`tasks`) or a
seed (`seed_tasks`). CreateSession's seed is sent as the reset's `seed` unless the
task fixes one; the session id is sent as `episode_id`.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from outrider.envs.interface import Message, Task, TaskNotFound
from outrider.proto import jsontext
from outrider.proto.v1 import env_pb2

Problem = tuple[str, str]

TRANSPORTS = ("websocket", "http")
DEFAULT_TRANSPORT = "websocket"
FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
TASK_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
SPLITS = ("train", "test")
MAX_TASKS = 100_000
MAX_SEED_TASKS = 10_000_000
MAX_JSON = 16_384
MAX_INSTRUCTIONS = 16_384
DEFAULT_PORTS = {"http": 80, "https": 443}


class ProtocolError(ValueError):
    """A reply of the server is not in OpenEnv's format; the message names what is wrong."""


# --- the spec ---------------------------------------------------------------------


def endpoint_host_port(base_url: str) -> tuple[str, int] | None:
    """(host, port) of an http(s) base URL, the port filled in from the scheme; None if it has none.
    The host is as the URL spells it, IPv6 in brackets, so it is judged like remote.address."""
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return host, port if port is not None else DEFAULT_PORTS[parts.scheme]


def base_url_problems(base_url: str) -> list[Problem]:
    path = "openenv.base_url"
    if not base_url:
        return [(path, "is empty; give the server's URL, e.g. 'http://127.0.0.1:8000'")]
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError as exc:
        return [(path, f"{base_url!r} is not a URL: {exc}")]
    if parts.scheme not in DEFAULT_PORTS:
        return [(path, f"{base_url!r}: the scheme must be http or https (the WebSocket URL is derived from it)")]
    if not parts.hostname:
        return [(path, f"{base_url!r} has no host")]
    if parts.username is not None or parts.password is not None:
        return [(path, f"{base_url!r}: user info in the URL is refused (credentials do not belong in a spec)")]
    if parts.query or parts.fragment or base_url.endswith(("?", "#")):
        return [(path, f"{base_url!r}: a base URL has no query or fragment")]
    if port == 0:
        return [(path, f"{base_url!r}: port must be in 1-65535")]
    host = parts.hostname
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.split("%")[0])
        except ValueError:
            return [(path, f"{base_url!r}: {host!r} is not an IPv6 address")]
    elif not re.fullmatch(r"[A-Za-z0-9_.-]+", host):
        return [(path, f"{base_url!r}: host {host!r} may have only letters, digits, '.', '-', '_'")]
    return []


def _json_object(text: str, path: str) -> tuple[dict | None, list[Problem]]:
    if len(text) > MAX_JSON:
        return None, [(path, f"longer than {MAX_JSON} characters")]
    try:
        value = jsontext.loads(text)
    except json.JSONDecodeError as exc:
        return None, [(path, f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")]
    if not isinstance(value, dict):
        return None, [(path, f"must be a JSON object, got {type(value).__name__}")]
    return value, []


def openenv_problems(spec: env_pb2.EnvSpec) -> list[Problem]:
    """Every problem of the `openenv` part of `spec`, as (field path, message)."""
    endpoint = spec.openenv
    problems = base_url_problems(endpoint.base_url)
    if not (math.isfinite(endpoint.timeout_s) and 0 <= endpoint.timeout_s <= 3600):
        problems.append(("openenv.timeout_s", f"{endpoint.timeout_s} must be in [0, 3600] (0: the service default)"))
    if endpoint.transport and endpoint.transport not in TRANSPORTS:
        problems.append(("openenv.transport", f"{endpoint.transport!r} is not one of {', '.join(TRANSPORTS)}"))
    if not endpoint.action_field:
        problems.append(("openenv.action_field", "is empty; name the action field that receives the policy's text (see the server's GET /schema)"))
    elif not FIELD_RE.match(endpoint.action_field):
        problems.append(("openenv.action_field", f"{endpoint.action_field!r} must be a field name (letters, digits, '_'; 1-64)"))
    if endpoint.action_template_json:
        template, found = _json_object(endpoint.action_template_json, "openenv.action_template_json")
        problems += found
        if template is not None and endpoint.action_field in template:
            problems.append(("openenv.action_template_json", f"sets {endpoint.action_field!r}, the action_field the policy's text goes to"))
    if endpoint.observation_field and not FIELD_RE.match(endpoint.observation_field):
        problems.append(("openenv.observation_field", f"{endpoint.observation_field!r} must be a field name (letters, digits, '_'; 1-64), or empty for the whole observation"))
    if len(endpoint.instructions) > MAX_INSTRUCTIONS:
        problems.append(("openenv.instructions", f"longer than {MAX_INSTRUCTIONS} characters"))
    if endpoint.HasField("solved_reward") and not math.isfinite(endpoint.solved_reward):
        problems.append(("openenv.solved_reward", f"{endpoint.solved_reward} is not a finite number"))
    return problems + _task_problems(endpoint)


def _task_problems(endpoint: env_pb2.OpenEnvEndpoint) -> list[Problem]:
    seeds = endpoint.seed_tasks
    has_seeds = endpoint.HasField("seed_tasks")
    if endpoint.tasks and has_seeds:
        return [("openenv.seed_tasks", "set together with openenv.tasks; give one of them")]
    if not endpoint.tasks and not has_seeds:
        return [("openenv.tasks", "no tasks: list reset arguments in `tasks`, or give `seed_tasks: {train: N, test: M}`")]
    if has_seeds:
        problems = []
        if seeds.train + seeds.test == 0:
            problems.append(("openenv.seed_tasks", "train and test are both 0; give at least one task"))
        if seeds.train + seeds.test > MAX_SEED_TASKS:
            problems.append(("openenv.seed_tasks", f"{seeds.train + seeds.test} tasks, above the limit of {MAX_SEED_TASKS}"))
        return problems
    if len(endpoint.tasks) > MAX_TASKS:
        return [("openenv.tasks", f"{len(endpoint.tasks)} tasks, above the limit of {MAX_TASKS}")]
    problems, seen = [], set()
    for i, task in enumerate(endpoint.tasks):
        path = f"openenv.tasks[{i}]"
        if not TASK_ID_RE.match(task.id):
            problems.append((f"{path}.id", f"{task.id!r} must be 1-128 of letters, digits, '-', '_', '.'"))
        elif task.id in seen:
            problems.append((f"{path}.id", f"{task.id!r} appears twice"))
        seen.add(task.id)
        if task.split and task.split not in SPLITS:
            problems.append((f"{path}.split", f"{task.split!r} is not one of {', '.join(SPLITS)}"))
        if task.reset_json:
            kwargs, found = _json_object(task.reset_json, f"{path}.reset_json")
            problems += found
            if kwargs is not None and "episode_id" in kwargs:
                problems.append((f"{path}.reset_json", "sets 'episode_id', which the env service sends (the session id)"))
            if kwargs is not None and "seed" in kwargs and not (isinstance(kwargs["seed"], int) and not isinstance(kwargs["seed"], bool) and kwargs["seed"] >= 0):
                problems.append((f"{path}.reset_json", f"seed: {kwargs['seed']!r} must be a whole number >= 0 (OpenEnv's ResetRequest)"))
        if len(task.preview) > 4096:
            problems.append((f"{path}.preview", "longer than 4096 characters"))
    return problems


def unapplied_problems(spec: env_pb2.EnvSpec) -> list[Problem]:
    """Fields of an openenv spec nothing would act on (docs/environments.md, "What each field does")."""
    problems = []
    if spec.sandbox.ListFields():
        problems.append(("sandbox", "an OpenEnv server runs its code in its own process: the env service's sandbox limits do not reach it; remove them"))
    if spec.params:
        problems.append(("params", "an OpenEnv server is not constructed by the env service; give reset arguments in openenv.tasks[].reset_json"))
    if spec.tools:
        problems.append(("tools", "an OpenEnv environment's tools are its actions; the env service cannot serve or check them; describe them in openenv.instructions"))
    if spec.reward.process_signals:
        problems.append(("reward.process_signals", "an OpenEnv server gives no process signals (its replies carry one reward)"))
    return problems


def with_openenv_defaults(spec: env_pb2.EnvSpec) -> None:
    """Fill in the transport in place (the stored spec says which one is used)."""
    spec.openenv.transport = spec.openenv.transport or DEFAULT_TRANSPORT


# --- tasks ------------------------------------------------------------------------


def _split(task: env_pb2.OpenEnvTask) -> str:
    return task.split or "train"


def task_page(endpoint: env_pb2.OpenEnvEndpoint, split: str, offset: int, limit: int) -> tuple[list[Task], int]:
    """Tasks [offset, offset + limit) of a split and the split's size; TaskNotFound for an unknown split."""
    if split not in SPLITS:
        raise TaskNotFound(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if endpoint.HasField("seed_tasks"):
        count = endpoint.seed_tasks.train if split == "train" else endpoint.seed_tasks.test
        first = 0 if split == "train" else endpoint.seed_tasks.train
        indices = range(offset, min(offset + limit, count))
        return [Task(id=f"{split}-{i:05d}", split=split, preview=f"seed {first + i}") for i in indices], count
    tasks = [task for task in endpoint.tasks if _split(task) == split]
    page = tasks[offset : offset + limit]
    return [Task(id=task.id, split=split, preview=task.preview or task.reset_json) for task in page], len(tasks)


def reset_body(endpoint: env_pb2.OpenEnvEndpoint, task_id: str, seed: int, episode_id: str) -> dict[str, Any]:
    """The reset arguments of a task: its own, then `seed` (unless the task fixes one) and `episode_id`.
    TaskNotFound for an id the spec does not have."""
    if endpoint.HasField("seed_tasks"):
        split, _, index = task_id.partition("-")
        count = {"train": endpoint.seed_tasks.train, "test": endpoint.seed_tasks.test}.get(split, 0)
        if not (index.isdigit() and len(index) >= 5 and int(index) < count and task_id == f"{split}-{int(index):05d}"):
            raise TaskNotFound(f"unknown task {task_id!r} (seed tasks: train-00000..; {endpoint.seed_tasks.train} train, {endpoint.seed_tasks.test} test)")
        first = 0 if split == "train" else endpoint.seed_tasks.train
        return {"seed": first + int(index), "episode_id": episode_id}
    for task in endpoint.tasks:
        if task.id == task_id:
            body = json.loads(task.reset_json) if task.reset_json else {}
            body.setdefault("seed", seed)
            body["episode_id"] = episode_id
            return body
    raise TaskNotFound(f"unknown task {task_id!r}; the spec lists {len(endpoint.tasks)} (see ListTasks)")


# --- actions and replies ------------------------------------------------------------


def action(endpoint: env_pb2.OpenEnvEndpoint, text: str) -> dict[str, Any]:
    """The action object a policy's text becomes: the template's fields, and the text in `action_field`."""
    body = json.loads(endpoint.action_template_json) if endpoint.action_template_json else {}
    body[endpoint.action_field] = text
    return body


@dataclass(frozen=True)
class Reply:
    """An OpenEnv reset or step reply."""

    observation: dict[str, Any]
    reward: float | None
    done: bool
    metadata: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """The numeric entries of the reply's metadata (StepInfo.metrics); booleans as 0/1."""
        return {
            str(key): float(value)
            for key, value in self.metadata.items()
            if isinstance(value, (int, float)) and math.isfinite(float(value))
        }


def parse_reply(data: Any) -> Reply:
    """A decoded JSON reply as a Reply; ProtocolError naming the field that is not as OpenEnv sends it."""
    if not isinstance(data, dict):
        raise ProtocolError(f"the reply is a JSON {type(data).__name__}, not an object with observation, reward, done")
    if not isinstance(data.get("observation"), dict):
        got = "missing" if "observation" not in data else f"a {type(data['observation']).__name__}"
        raise ProtocolError(f"observation: {got}, expected an object (keys of the reply: {', '.join(map(str, data)) or 'none'})")
    reward = data.get("reward")
    if reward is not None:
        if isinstance(reward, bool):
            reward = float(reward)  # OpenEnv's Observation.reward admits bool
        if not isinstance(reward, (int, float)):
            raise ProtocolError(f"reward: {reward!r} is not a number or null")
        reward = float(reward)
        if not math.isfinite(reward):
            raise ProtocolError(f"reward: {reward} is not a finite number")
    done = data.get("done", False)
    if not isinstance(done, bool):
        raise ProtocolError(f"done: {done!r} is not true or false")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ProtocolError(f"metadata: a {type(metadata).__name__}, expected an object or null")
    return Reply(data["observation"], reward, done, metadata)


def render(endpoint: env_pb2.OpenEnvEndpoint, observation: Mapping[str, Any]) -> str:
    """The text the policy sees of an observation; ProtocolError if `observation_field` is missing."""
    name = endpoint.observation_field
    if not name:
        return json.dumps(observation, ensure_ascii=False)
    if name not in observation:
        raise ProtocolError(f"observation: has no field {name!r} (openenv.observation_field); it has: {', '.join(map(str, observation)) or 'none'}")
    value = observation[name]
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def first_messages(endpoint: env_pb2.OpenEnvEndpoint, reply: Reply) -> list[Message]:
    """The first observation of a session: the instructions (a system message), then the reset's observation."""
    messages = [Message("system", endpoint.instructions)] if endpoint.instructions else []
    return [*messages, Message("user", render(endpoint, reply.observation))]


def solved(endpoint: env_pb2.OpenEnvEndpoint, reply: Reply, reward: float) -> bool:
    return reply.done and endpoint.HasField("solved_reward") and reward >= endpoint.solved_reward

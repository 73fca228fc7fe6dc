"""Registered environments: spec validation, entry-point loading, built-ins.

`EnvRegistry.register(spec)` validates the spec, and for the `python` kind
imports the entry point and constructs one instance with the spec's params
(its task catalog), so a bad module, class or param fails at registration with
the field named, not at the first session. A `remote` spec is stored as is:
the remote process may start later; calls to it fail with UNAVAILABLE then.
An `openenv` spec likewise (its tasks are in the spec; the server is first
contacted by CreateSession).

Only code installed in the env service's Python can be named by an entry point;
an environment in another language runs as its own process (kind `remote`).
A python spec may not say more than its class does (`class_problems`): no tools
it does not serve, no sandbox limits for a class that runs no code, no process
signals it does not give; what the spec leaves out of those is filled in from
the class's `default_spec()`.

A spec from a client (not `trusted`) also passes the service's admission rules
(`outrider.envs.admission`): allow-listed modules, imported in a child process
first; every spec has its sandbox limits capped and its remote address checked.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from dataclasses import dataclass

from outrider.envs.admission import Admission
from outrider.envs.builtin import builtin_class
from outrider.envs.interface import EnvContext, Environment, ParamError
from outrider.envs.sandbox import Sandbox
from outrider.envs.spec import SpecError, validate_spec, with_defaults
from outrider.proto.v1 import env_pb2


class EnvExists(KeyError):
    """An environment of that name is registered and `replace` was not set."""


class EnvNotFound(KeyError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown environment"


@dataclass
class RegisteredEnv:
    spec: env_pb2.EnvSpec
    env_class: type[Environment] | None = None
    """The class (python kind); None for remote and openenv environments."""
    catalog: Environment | None = None
    """An instance used to list tasks (python kind)."""
    context: EnvContext | None = None

    @property
    def remote(self) -> bool:
        return self.spec.WhichOneof("kind") == "remote"

    @property
    def openenv(self) -> bool:
        return self.spec.WhichOneof("kind") == "openenv"

    def new_instance(self) -> Environment:
        """A fresh environment for one episode."""
        return self.env_class(dict(self.spec.params), self.context)


def load_entry_point(entry_point: str) -> type[Environment]:
    """The Environment subclass that "package.module:ClassName" names; SpecError if none."""
    module_name, _, attribute = entry_point.partition(":")
    field = "python.entry_point"
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any import failure is the spec's problem
        raise SpecError("<spec>", [(field, f"cannot import {module_name!r}: {type(exc).__name__}: {exc}")]) from None
    cls = getattr(module, attribute, None)
    if cls is None:
        raise SpecError("<spec>", [(field, f"module {module_name!r} has no attribute {attribute!r}")])
    if not (inspect.isclass(cls) and issubclass(cls, Environment)):
        raise SpecError("<spec>", [(field, f"{entry_point!r} is not a subclass of outrider.envs.Environment")])
    if inspect.isabstract(cls):
        raise SpecError("<spec>", [(field, f"{entry_point!r} is abstract (missing: {', '.join(sorted(cls.__abstractmethods__))})")])
    return cls


def _declared(cls: type[Environment]) -> env_pb2.EnvSpec | None:
    """What the class says of itself (`default_spec()`); None for a class that says nothing."""
    return cls.default_spec()


def class_problems(spec: env_pb2.EnvSpec, cls: type[Environment]) -> list[tuple[str, str]]:
    """Fields of a python spec that its class would not act on, as (field path, message).

    The class is what runs: its first observation states its tools, it emits (or not)
    process signals, and only a class that `needs_sandbox` runs code under the limits.
    So a spec may repeat what the class declares (`default_spec()`), not add to it."""
    entry_point, declared = spec.python.entry_point, _declared(cls)
    problems = []
    served = {tool.name: tool for tool in declared.tools} if declared is not None else {}
    names = ", ".join(served) or "none"
    for i, tool in enumerate(spec.tools):
        if tool.name not in served:
            problems.append((f"tools[{i}].name", f"{tool.name!r} is not a tool of {entry_point} (it serves: {names}); a spec cannot add tools"))
        elif tool != served[tool.name]:
            problems.append((f"tools[{i}]", f"differs from the {tool.name!r} schema {entry_point} serves; omit `tools` to get the environment's own"))
    missing = sorted(set(served) - {tool.name for tool in spec.tools})
    if spec.tools and missing:
        problems.append(("tools", f"leaves out {', '.join(missing)}, which {entry_point} serves all the same; omit `tools` to get them all"))
    if spec.sandbox.ListFields() and not cls.needs_sandbox:
        problems.append(("sandbox", f"{entry_point} runs no code in the sandbox (needs_sandbox is false): the limits would not apply; remove them"))
    if spec.reward.process_signals and declared is not None and not declared.reward.process_signals:
        problems.append(("reward.process_signals", f"{entry_point} gives no process signals (its default_spec() says so)"))
    return problems


def with_class_defaults(spec: env_pb2.EnvSpec, cls: type[Environment]) -> env_pb2.EnvSpec:
    """`spec` with what its class declares and the spec left out: its tools, its process signals."""
    declared = _declared(cls)
    filled = env_pb2.EnvSpec()
    filled.CopyFrom(spec)
    if declared is not None:
        if not filled.tools:
            filled.tools.extend(declared.tools)
        filled.reward.process_signals = filled.reward.process_signals or declared.reward.process_signals
    return filled


def builtin_spec(name: str, params: dict[str, str] | None = None) -> env_pb2.EnvSpec:
    """The default spec of a built-in environment, with `params` merged in."""
    spec = builtin_class(name).default_spec()
    spec.params.update(params or {})
    return spec


class EnvRegistry:
    """Thread-safe name → RegisteredEnv map."""

    def __init__(self, sandbox: Sandbox | None = None, sandbox_unavailable_reason: str = "", admission: Admission | None = None):
        self.sandbox = sandbox
        self.sandbox_unavailable_reason = sandbox_unavailable_reason
        self.admission = admission or Admission.from_config()
        self._envs: dict[str, RegisteredEnv] = {}
        self._lock = threading.Lock()

    def register(self, spec: env_pb2.EnvSpec, replace: bool = False, source: str = "<spec>", trusted: bool = False) -> env_pb2.EnvSpec:
        """Validate, load and store `spec`; returns the stored spec (defaults filled in).

        `trusted`: the spec comes from the service's own config (built-ins, spec
        files), so its module needs no allow-list entry and no child-process import.
        Blocks while a module is imported (in a child, then here): call it off the event loop.
        """
        problems = validate_spec(spec)
        problems += self.admission.spec_problems(spec)
        if not problems and spec.WhichOneof("kind") == "python" and not trusted:
            problems += self.admission.module_problems(spec.python.entry_point)
        if spec.WhichOneof("kind") == "agent" and not trusted:
            problems.append(("agent", "an agent environment runs a program of the env service's host: register it "
                                      "in the service's own config (env.spec_files), not over RegisterEnv"))
        if problems:
            raise SpecError(source, problems)
        entry = self._prepare(with_defaults(spec), source)
        spec = entry.spec
        with self._lock:
            if spec.name in self._envs and not replace:
                raise EnvExists(f"environment {spec.name!r} is already registered (set replace to overwrite it)")
            self._envs[spec.name] = entry
        return spec

    def _prepare(self, spec: env_pb2.EnvSpec, source: str) -> RegisteredEnv:
        if spec.WhichOneof("kind") in ("remote", "openenv", "agent"):
            return RegisteredEnv(spec)
        try:
            cls = load_entry_point(spec.python.entry_point)
        except SpecError as exc:
            raise SpecError(source, exc.problems) from None
        problems = class_problems(spec, cls)
        if problems:
            raise SpecError(source, problems)
        spec = with_class_defaults(spec, cls)
        context = EnvContext(
            sandbox=self.sandbox,
            sandbox_limits=spec.sandbox if spec.HasField("sandbox") else None,
            sandbox_unavailable_reason=self.sandbox_unavailable_reason,
        )
        try:
            catalog = cls(dict(spec.params), context)
        except ParamError as exc:
            raise SpecError(source, [(str(exc).split(":", 1)[0], str(exc).split(":", 1)[1].strip())]) from None
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a constructor failure is the spec's problem
            raise SpecError(source, [("params", f"{spec.python.entry_point} rejected them: {type(exc).__name__}: {exc}")]) from None
        return RegisteredEnv(spec, cls, catalog, context)

    def unregister(self, name: str) -> None:
        with self._lock:
            if self._envs.pop(name, None) is None:
                raise EnvNotFound(self._unknown(name))

    def get(self, name: str) -> RegisteredEnv:
        with self._lock:
            entry = self._envs.get(name)
        if entry is None:
            raise EnvNotFound(self._unknown(name))
        return entry

    def specs(self) -> list[env_pb2.EnvSpec]:
        with self._lock:
            return [entry.spec for _, entry in sorted(self._envs.items())]

    def _unknown(self, name: str) -> str:
        known = ", ".join(sorted(self._envs)) or "none"
        return f"unknown environment {name!r}; registered: {known}"

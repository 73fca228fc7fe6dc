"""The environment interface: small, async, multi-turn.

An environment class is constructed once per episode (session) with its
EnvSpec params and a context (the sandbox); the service also keeps one
instance per registered environment to list its tasks.

    class MyEnv(Environment):
        def tasks(self, split):            # deterministic, cheap
            return [Task(id="train-0", split="train", preview="...", reference="42")]
        async def reset(self, task_id, seed):
            return [Message("user", "What is 6 * 7?")]
        async def step(self, action):
            ok = action.strip().endswith("42")
            return StepResult(observation=[] if ok else [Message("user", "No, try again.")],
                              reward=1.0 if ok else 0.0, done=ok, solved=ok)

Errors are never turned into rewards here: an exception raised by `reset` or
`step` reaches the caller (the service turns it into StepResponse.status=ERROR,
counted, reward absent). Turn limits (EnvSpec.max_turns) are applied by
`outrider.envs.episode.Episode`, not by environments.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from outrider.envs.sandbox import RunResult, Sandbox
from outrider.proto.chat import Message  # the one chat message type; environments import it from here
from outrider.proto.v1 import common_pb2, env_pb2


class TaskNotFound(KeyError):
    """`reset` got a task id the environment does not have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown task"


class ParamError(ValueError):
    """An EnvSpec param has a value the environment cannot use."""


@dataclass(frozen=True)
class Task:
    """One problem of an environment (outrider.v1.Task)."""

    id: str
    split: str
    difficulty: float = 0.0
    preview: str = ""
    reference: str = ""
    """Ground truth (final answer, hidden tests) for verifiers; never shown to the policy."""

    def to_proto(self, env: str, include_reference: bool) -> common_pb2.Task:
        return common_pb2.Task(
            id=self.id,
            env=env,
            split=self.split,
            difficulty=self.difficulty,
            preview=self.preview,
            reference=self.reference if include_reference else "",
        )


class ToolStatus(enum.Enum):
    OK = common_pb2.ItemStatus.OK
    ERROR = common_pb2.ItemStatus.ERROR
    """The tool ran and failed (e.g. the sandbox reported a limit)."""
    INVALID_INPUT = common_pb2.ItemStatus.INVALID_INPUT
    """The call itself was malformed (counted; the episode goes on)."""


@dataclass(frozen=True)
class ToolCallRecord:
    """One tool call executed during a step (outrider.v1.ToolCall)."""

    name: str
    arguments: str
    output: str
    status: ToolStatus = ToolStatus.OK
    message: str = ""
    sandbox: RunResult | None = None

    def to_proto(self, source: str) -> env_pb2.ToolCall:
        call = env_pb2.ToolCall(
            name=self.name,
            arguments=self.arguments,
            output=self.output,
            status=common_pb2.ItemStatus(code=self.status.value, message=self.message, source=source),
        )
        if self.sandbox is not None:
            call.sandbox.CopyFrom(self.sandbox.to_proto())
        return call


@dataclass
class StepResult:
    """What one step did. `reward` is this step's reward."""

    observation: list[Message]
    reward: float
    done: bool
    solved: bool = False
    process_score: float | None = None
    """Process signal in [0, 1] for this step, when the environment gives one."""
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EnvContext:
    """What the service gives every environment instance."""

    sandbox: Sandbox | None = None
    """None when no sandbox backend is usable here; environments that need one refuse to reset."""
    sandbox_limits: common_pb2.SandboxLimits | None = None
    """The EnvSpec's limits (zero fields: the sandbox's defaults)."""
    sandbox_unavailable_reason: str = ""


class Environment(ABC):
    """Base class of every Python environment (EnvSpec kind `python`)."""

    needs_sandbox: bool = False

    def __init__(self, params: Mapping[str, str] | None = None, context: EnvContext | None = None):
        self.params = dict(params or {})
        self.context = context or EnvContext()

    @classmethod
    def default_spec(cls) -> env_pb2.EnvSpec | None:
        """The EnvSpec this class is registered with by default (built-ins), if any."""
        return None

    @abstractmethod
    def tasks(self, split: str) -> Sequence[Task]:
        """All tasks of a split ("train" or "test"), in a fixed order."""

    @abstractmethod
    async def reset(self, task_id: str, seed: int) -> list[Message]:
        """Start an episode of task `task_id`; return the first observation. Raise TaskNotFound."""

    @abstractmethod
    async def step(self, action: str) -> StepResult:
        """Apply the policy's turn (the assistant message text)."""

    async def close(self) -> None:
        """Free the episode's resources (called once, also for unfinished episodes)."""

    def require_sandbox(self) -> Sandbox:
        if self.context.sandbox is None:
            reason = self.context.sandbox_unavailable_reason or "none configured"
            raise RuntimeError(f"{type(self).__name__} needs a sandbox, but none is available: {reason}")
        return self.context.sandbox


def param(params: Mapping[str, str], name: str, default, parse=None):
    """A typed param: `parse(text)` (default: the type of `default`); ParamError names the param."""
    if name not in params:
        return default
    parse = parse or type(default)
    try:
        return parse(params[name])
    except (TypeError, ValueError) as exc:
        raise ParamError(f"params.{name}: cannot use {params[name]!r}: {exc}") from None

"""Environments: the interface (`Environment`), built-ins, the tool-call format, the sandbox.

    from outrider.envs import Environment, Message, StepResult, Task
    from outrider.envs.sandbox import make_sandbox
"""

from outrider.envs.interface import (
    EnvContext,
    Environment,
    Message,
    ParamError,
    StepResult,
    Task,
    TaskNotFound,
    ToolCallRecord,
    ToolStatus,
)

__all__ = [
    "EnvContext",
    "Environment",
    "Message",
    "ParamError",
    "StepResult",
    "Task",
    "TaskNotFound",
    "ToolCallRecord",
    "ToolStatus",
]

"""Environments: the interface (`Environment`), built-ins, the tool-call format, the sandbox.

    from outrider.envs import Environment, Message, StepResult, Task
    from outrider.envs.sandbox import make_sandbox
"""

if __name__ != "outrider.envs":
    # `python -m pytest` and `python -c` put the repository root on sys.path, where this
    # folder would import as a second, separate package with its own module objects.
    raise ImportError(
        f"import outrider.envs, not {__name__}: the folder envs/ is installed as the package "
        "outrider.envs (docs/development.md, Layout and imports); a bare import would load a second copy"
    )

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

"""Isolated execution of code that models write.

    from outrider.envs.sandbox import Limits, make_sandbox

    sandbox = make_sandbox()                     # "auto": bwrap, else gvisor
    result = sandbox.run("print(6 * 7)", Limits(wall_time_s=5))
    result.stdout, result.exit_code, result.limit_hit, result.to_proto()
    result = await sandbox.arun({"main.py": "...", "tests.py": "..."})

Backends: `bwrap` (Linux namespaces; default), `gvisor` (runsc; a user-space
kernel), `docker` (an engine via the docker SDK) and `subprocess` (no
isolation: only when asked for by name, with a warning). See
docs/environments.md for what each one isolates.
"""

from __future__ import annotations

from outrider.envs.sandbox.base import (
    Limits,
    LimitHit,
    Program,
    RunExtras,
    RunResult,
    Sandbox,
    SandboxError,
    SandboxOptions,
    SandboxUnavailable,
)

BACKENDS = ("bwrap", "gvisor", "docker", "subprocess")
AUTO_ORDER = ("bwrap", "gvisor")


def backend_class(name: str) -> type[Sandbox]:
    if name == "bwrap":
        from outrider.envs.sandbox.bwrap import BwrapSandbox as cls
    elif name == "gvisor":
        from outrider.envs.sandbox.gvisor import GVisorSandbox as cls
    elif name == "docker":
        from outrider.envs.sandbox.docker import DockerSandbox as cls
    elif name == "subprocess":
        from outrider.envs.sandbox.subprocess import SubprocessSandbox as cls
    else:
        raise ValueError(f"unknown sandbox backend {name!r}; valid: auto, {', '.join(BACKENDS)}")
    return cls


def make_sandbox(backend: str = "auto", options: SandboxOptions | None = None, limits: Limits | None = None) -> Sandbox:
    """A ready sandbox of `backend` ("auto", "bwrap", "gvisor", "docker", "subprocess").

    "auto" takes the first of bwrap, gvisor that works here; it never falls back
    to the unisolated `subprocess`. Raises SandboxUnavailable naming why not.
    """
    options = options or SandboxOptions()
    names = AUTO_ORDER if backend == "auto" else (backend,)
    reasons = []
    for name in names:
        cls = backend_class(name)
        reason = cls.unavailable_reason(options)
        if reason is None:
            return cls(options, limits)
        reasons.append(f"{name}: {reason}")
    hint = "; choose backend 'subprocess' explicitly to run without isolation" if backend == "auto" else ""
    raise SandboxUnavailable(f"no usable sandbox backend ({'; '.join(reasons)}){hint}")


def sandbox_from_config(cfg) -> Sandbox:
    """From an `outrider.config.env.SandboxConfig`."""
    return make_sandbox(cfg.backend, SandboxOptions.from_config(cfg), Limits.from_config(cfg.limits))


__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "Limits",
    "LimitHit",
    "Program",
    "RunExtras",
    "RunResult",
    "Sandbox",
    "SandboxError",
    "SandboxOptions",
    "SandboxUnavailable",
    "backend_class",
    "make_sandbox",
    "sandbox_from_config",
]

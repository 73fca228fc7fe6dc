"""The sandbox interface: limits, results, and the `Sandbox` base class.

A sandbox runs one program (a Python snippet, or a few files and a command) in a
fresh private workspace and reports what happened:

    sandbox = make_sandbox()                      # bwrap, else gVisor
    result = sandbox.run("print(6 * 7)", Limits(wall_time_s=5))
    result.stdout == "42\\n"; result.limit_hit is LimitHit.NONE
    result = await sandbox.arun({"main.py": ..., "data.txt": ...})

Backends differ in how the command is isolated (`_execute`, or `_run` for bwrap,
which builds the workspace inside the sandbox); limits, output capping and
result decoding are shared.
"""

from __future__ import annotations

import asyncio
import enum
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from outrider.proto.v1 import common_pb2

MIB = 1024 * 1024

Program = str | Mapping[str, str | bytes]
"""Python source (run as `main.py`) or a mapping of relative file names to contents."""


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program it ran): a backend is broken or missing."""


class SandboxUnavailable(SandboxError):
    """A backend cannot run on this host; the message says why."""


class LimitHit(enum.Enum):
    """Which limit stopped a run (values are the proto enum's numbers)."""

    NONE = common_pb2.SANDBOX_LIMIT_NONE
    WALL_TIME = common_pb2.SANDBOX_LIMIT_WALL_TIME
    CPU_TIME = common_pb2.SANDBOX_LIMIT_CPU_TIME
    MEMORY = common_pb2.SANDBOX_LIMIT_MEMORY
    PROCESSES = common_pb2.SANDBOX_LIMIT_PROCESSES
    OUTPUT = common_pb2.SANDBOX_LIMIT_OUTPUT
    FILE_SIZE = common_pb2.SANDBOX_LIMIT_FILE_SIZE


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run (SandboxLimits in common.proto; there 0 means "default")."""

    wall_time_s: float = 10.0
    cpu_time_s: float = 10.0
    memory_bytes: int = 512 * MIB
    max_processes: int = 32
    max_output_bytes: int = 64 * 1024
    max_file_bytes: int = 16 * MIB

    def __post_init__(self) -> None:
        for f in fields(self):
            if not getattr(self, f.name) > 0:
                raise ValueError(f"Limits.{f.name} must be > 0, got {getattr(self, f.name)!r}")

    def merged(self, override: Limits | common_pb2.SandboxLimits | None) -> Limits:
        """These limits with the non-zero values of `override` put in their place."""
        if override is None:
            return self
        if isinstance(override, Limits):
            return override
        changes = {f.name: getattr(override, f.name) for f in fields(self) if getattr(override, f.name)}
        return replace(self, **changes)

    def to_proto(self) -> common_pb2.SandboxLimits:
        return common_pb2.SandboxLimits(**{f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_config(cls, cfg) -> Limits:
        """From an `outrider.config.env.SandboxLimitsConfig`."""
        return cls(**{f.name: getattr(cfg, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class RunResult:
    """What one sandboxed run did (SandboxResult in common.proto)."""

    stdout: str
    stderr: str
    exit_code: int
    """Exit status; negative: killed by that signal."""
    duration_s: float
    limit_hit: LimitHit
    backend: str
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    @property
    def ok(self) -> bool:
        """The program ended on its own with exit status 0."""
        return self.exit_code == 0 and self.limit_hit is LimitHit.NONE

    def to_proto(self) -> common_pb2.SandboxResult:
        return common_pb2.SandboxResult(
            stdout=self.stdout,
            stderr=self.stderr,
            exit_code=self.exit_code,
            duration_s=self.duration_s,
            limit_hit=self.limit_hit.value,
            backend=self.backend,
            stdout_truncated=self.stdout_truncated,
            stderr_truncated=self.stderr_truncated,
        )


@dataclass(frozen=True)
class RunExtras:
    """What one run needs beyond its workspace (agent programs, outrider.envs.agents):
    host paths mounted read-only, and environment variables. Only backends with
    `supports_extras` take them; the others refuse a run that asks."""

    ro_binds: tuple[tuple[str, str], ...] = ()
    """(host path, path inside the sandbox) pairs, mounted read-only."""
    env: tuple[tuple[str, str], ...] = ()
    """Variables added to the program's (otherwise fixed) environment."""


def _default_python() -> str | None:
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass(frozen=True)
class SandboxOptions:
    """Host-side settings shared by the backends (SandboxConfig in outrider.config.env)."""

    python: str | None = field(default_factory=_default_python)
    """Interpreter that `python3`/`python` in a command runs; must be visible inside (under /usr or ro_binds)."""
    ro_binds: tuple[str, ...] = ()
    """Extra host folders mounted read-only at the same path."""
    workspace_root: Path = field(default_factory=lambda: Path(os.environ.get("TMPDIR", "/tmp")) / "outrider-sandbox")
    """Each run gets a private folder under this one, removed afterwards."""
    tmp_bytes: int = 64 * MIB
    """Size of the in-memory /tmp inside the sandbox."""
    workspace_bytes: int = 64 * MIB
    """Size of the in-memory /work of a bwrap run (other backends use a host folder)."""
    uid_base: int = 1_000_000
    """First host uid of per-run identities (used when running as root)."""
    docker_image: str = "python:3.11-slim"
    """Image of the docker backend."""
    max_concurrent_runs: int = 8
    """Threads that execute `arun` calls."""
    seccomp: bool = True
    """bwrap: install the seccomp filter of `outrider.envs.sandbox.seccomp` in the program."""
    cgroups: str = "auto"
    """bwrap: per-run cgroups, "auto" (v2, else v1, else rlimits only), "v2", "v1" or "off"."""
    cgroup_parent: str | None = None
    """bwrap: hierarchy path under which run cgroups are made; None: v2 the service's own
    cgroup, v1 `outrider-sandbox` below each controller's mount."""
    cpu_cores: float | None = 1.0
    """bwrap with cgroups: CPU rate of one run (cpu.max), cores; None: unlimited."""

    @classmethod
    def from_config(cls, cfg) -> SandboxOptions:
        """From an `outrider.config.env.SandboxConfig`."""
        values = {
            "ro_binds": tuple(cfg.ro_binds),
            "tmp_bytes": cfg.tmp_bytes,
            "workspace_bytes": cfg.workspace_bytes,
            "uid_base": cfg.uid_base,
            "docker_image": cfg.docker_image,
            "max_concurrent_runs": cfg.max_concurrent_runs,
            "seccomp": cfg.seccomp,
            "cgroups": cfg.cgroups,
            "cgroup_parent": cfg.cgroup_parent,
            "cpu_cores": cfg.cpu_cores,
        }
        if cfg.python is not None:
            values["python"] = cfg.python
        if cfg.workspace_root is not None:
            values["workspace_root"] = Path(cfg.workspace_root)
        return cls(**values)


def program_files(program: Program) -> dict[str, bytes]:
    """The files of a program, validated: relative paths that stay inside the workspace."""
    if isinstance(program, str):
        return {"main.py": program.encode()}
    files = {}
    for name, content in program.items():
        path = Path(name)
        if not name or path.is_absolute() or ".." in path.parts:
            raise ValueError(f"program file name {name!r} must be a relative path inside the workspace")
        files[str(path)] = content.encode() if isinstance(content, str) else bytes(content)
    return files


class Sandbox(ABC):
    """Runs programs isolated from the host. Thread-safe; `arun` for async callers."""

    name: str = ""
    isolated: bool = True
    supports_extras: bool = False
    """Whether `run(..., extras=...)` is possible (bind mounts and variables per run)."""

    def __init__(self, options: SandboxOptions | None = None, limits: Limits | None = None):
        self.options = options or SandboxOptions()
        self.default_limits = limits or Limits()
        self._executor: ThreadPoolExecutor | None = None

    @classmethod
    @abstractmethod
    def unavailable_reason(cls, options: SandboxOptions | None = None) -> str | None:
        """Why this backend cannot run here, or None when it can."""

    def run(
        self,
        program: Program,
        limits: Limits | common_pb2.SandboxLimits | None = None,
        *,
        command: Sequence[str] | None = None,
        extras: RunExtras | None = None,
    ) -> RunResult:
        """Run `program` in a fresh workspace (the working directory) and wait for it.

        `command` defaults to `python3 main.py`; `python3`/`python` as its first word
        is the sandbox's interpreter. Raises SandboxError only when the sandbox itself
        fails; everything the program does is in the result.
        """
        files = program_files(program)
        argv = list(command) if command else ["python3", "main.py"]
        if not argv or not all(isinstance(word, str) and word for word in argv):
            raise ValueError("command must be a non-empty list of non-empty strings")
        if argv[0] in ("python3", "python"):
            argv[0] = self._interpreter()
        if extras is not None and (extras.ro_binds or extras.env):
            if not self.supports_extras:
                raise SandboxError(f"the {self.name} backend cannot mount folders or set variables per run; use bwrap")
            return self._run(files, argv, self.default_limits.merged(limits), extras)
        return self._run(files, argv, self.default_limits.merged(limits))

    async def arun(
        self,
        program: Program,
        limits: Limits | common_pb2.SandboxLimits | None = None,
        *,
        command: Sequence[str] | None = None,
        extras: RunExtras | None = None,
    ) -> RunResult:
        """`run` on the sandbox's own thread pool (at most `max_concurrent_runs` at once)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.options.max_concurrent_runs, thread_name_prefix=f"sandbox-{self.name}")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: self.run(program, limits, command=command, extras=extras))

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def describe(self) -> str:
        """One line on how this backend isolates and limits runs (bwrap: cgroups or rlimits, seccomp)."""
        return self.name

    def _interpreter(self) -> str:
        """What `python3` in a command means for this backend."""
        if self.options.python is None:
            raise SandboxError("no python3 found under /usr; set the sandbox's `python` option")
        return self.options.python

    def _needs_identity(self) -> bool:
        """Whether runs get their own host uid (only possible, and needed, as root)."""
        return os.geteuid() == 0

    def _run(self, files: dict[str, bytes], argv: list[str], limits: Limits) -> RunResult:
        """Put `files` in a fresh host workspace folder, then `_execute` (bwrap overrides this)."""
        from outrider.envs.sandbox.workspace import Workspace  # noqa: PLC0415 - avoids an import cycle

        with Workspace(self.options, self._needs_identity()) as workspace:
            workspace.write(files)
            return self._execute(workspace, argv, limits)

    def _execute(self, workspace, argv: list[str], limits: Limits) -> RunResult:
        """Run `argv` with `workspace.path` as the working directory (each backend's own)."""
        raise NotImplementedError(f"{type(self).__name__} must define _execute or override _run")


def find_binary(name: str) -> str | None:
    return shutil.which(name)

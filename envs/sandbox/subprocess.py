"""subprocess backend: NO isolation — only rlimits, a private working folder and,
as root, a throwaway uid. The program can read what that uid can read, reach
the network and see host processes. Never chosen by `auto`; only when named
explicitly (and it logs a warning every time one is created).
"""

from __future__ import annotations

import logging

from outrider.envs.sandbox.base import Limits, RunResult, Sandbox, SandboxOptions, find_binary
from outrider.envs.sandbox.limits import nproc_limit, prlimit_argv
from outrider.envs.sandbox.process import run_process

log = logging.getLogger(__name__)


class SubprocessSandbox(Sandbox):
    name = "subprocess"
    isolated = False

    def __init__(self, options: SandboxOptions | None = None, limits: Limits | None = None):
        super().__init__(options, limits)
        log.warning(
            "sandbox backend 'subprocess' gives NO isolation (network, host files and processes are "
            "reachable); use it only for trusted code or where no bwrap/gVisor exists"
        )

    @classmethod
    def unavailable_reason(cls, options: SandboxOptions | None = None) -> str | None:
        for helper in ("prlimit", "setpriv"):
            if find_binary(helper) is None:
                return f"{helper} (util-linux) not found on PATH"
        return None

    def _execute(self, workspace, argv: list[str], limits: Limits) -> RunResult:
        identity = workspace.identity
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(workspace.path),
            "TMPDIR": str(workspace.path),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        return run_process(
            [*prlimit_argv(limits, nproc_limit(limits, identity is not None, 0)), *argv],
            limits,
            self.name,
            env=env,
            cwd=str(workspace.path),
            user=identity.uid if identity else None,
        )

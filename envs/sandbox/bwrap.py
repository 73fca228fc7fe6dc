"""bubblewrap backend: Linux namespaces, the default on Linux.

The program sees a read-only /usr (and the /bin, /lib... links into it), its
own /proc (PID namespace), a minimal /dev, a private size-capped /tmp, and its
workspace /work: a size-capped tmpfs that exists only inside the sandbox (the
program's files are copied in by bwrap from memfds), so nothing a run writes
ever reaches the host's disk, and there is nothing to clean up. No /etc,
/home, /root or other host paths exist inside. Namespaces: user, PID, network
(only an unconfigured loopback: no egress, no host services), IPC, UTS,
cgroup, mount; `--new-session` (no TIOCSTI into the caller's terminal),
`--die-with-parent`, `--disable-userns` (no nested user namespaces),
environment cleared.

Limits are rlimits set by `prlimit` before bwrap starts (inherited by the
program); as root, bwrap itself runs as the run's leased unprivileged uid, so
RLIMIT_NPROC counts only this run's processes. When the outer bwrap is killed
(wall time, output cap) the PID namespace goes with it, so nothing survives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from outrider.envs.sandbox.base import (
    Limits,
    RunExtras,
    RunResult,
    Sandbox,
    SandboxError,
    SandboxOptions,
    find_binary,
)
from outrider.envs.sandbox.limits import nproc_limit, prlimit_argv
from outrider.envs.sandbox.process import run_process, wait_gone
from outrider.envs.sandbox.workspace import lease_identity, release_identity

SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/work",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
}
"""The whole environment of a sandboxed program: nothing of the host's is passed on."""

WORKDIR = "/work"
# bwrap's own processes inside the run's uid: itself and the PID namespace's init.
BWRAP_OWN_PROCESSES = 2
_TOP_LEVEL_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_probe_cache: dict[str, str | None] = {}


def _root_entries() -> list[str]:
    """Mount arguments for /usr and the top-level folders that point into it."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in _TOP_LEVEL_LINKS:
        path = f"/{name}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def bwrap_argv(options: SandboxOptions, workspace_args: list[str], extras: RunExtras | None = None) -> list[str]:
    """The bwrap command line up to (not including) the program's argv."""
    argv = [
        "bwrap",
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--hostname", "sandbox",
        *_root_entries(),
    ]
    for path in options.ro_binds:
        argv += ["--ro-bind", path, path]
    argv += [
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", str(options.tmp_bytes), "--tmpfs", "/tmp",
        "--size", str(options.workspace_bytes), "--tmpfs", WORKDIR,
        *workspace_args,
    ]
    # After the tmpfs mounts, so that a bind below /tmp or /work is not hidden by them.
    for host, inside in extras.ro_binds if extras else ():
        argv += ["--ro-bind", host, inside]
    argv += ["--chdir", WORKDIR, "--clearenv"]
    for key, value in {**SANDBOX_ENV, **dict(extras.env if extras else ())}.items():
        argv += ["--setenv", key, value]
    return [*argv, "--"]


def _decode_exit(code: int) -> int:
    # bwrap exits 128 + N when the program died of signal N.
    if code > 128 and code - 128 < signal.NSIG:
        return -(code - 128)
    return code


class BwrapSandbox(Sandbox):
    name = "bwrap"
    supports_extras = True

    @classmethod
    def unavailable_reason(cls, options: SandboxOptions | None = None) -> str | None:
        binary = find_binary("bwrap")
        if binary is None:
            return "bwrap not found on PATH (Debian/Ubuntu: apt-get install bubblewrap)"
        for helper in ("prlimit", "setpriv"):
            if find_binary(helper) is None:
                return f"{helper} (util-linux) not found on PATH"
        if binary not in _probe_cache:
            _probe_cache[binary] = _probe()
        return _probe_cache[binary]

    def _run(self, files: dict[str, bytes], argv: list[str], limits: Limits, extras: RunExtras | None = None) -> RunResult:
        identity = lease_identity(self.options) if os.geteuid() == 0 else None
        info_read, info_write = os.pipe()
        fds: list[int] = [info_write]
        try:
            workspace_args = ["--info-fd", str(info_write), *_workspace_args(files, fds)]
            command = [
                *prlimit_argv(limits, nproc_limit(limits, identity is not None, BWRAP_OWN_PROCESSES)),
                *bwrap_argv(self.options, workspace_args, extras),
                *argv,
            ]
            result = run_process(
                command,
                limits,
                self.name,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                user=identity.uid if identity else None,
                decode_exit=_decode_exit,
                pass_fds=fds,
                after_start=lambda: _close_all(fds),
            )
            # bwrap exits as soon as it has the program's status; its namespace
            # init may still be tearing down the namespace's other processes.
            namespace_init = _child_pid(info_read)
            if namespace_init is not None:
                wait_gone([namespace_init], timeout_s=10)
        finally:
            _close_all(fds)
            _close_quietly(info_read)
            if identity is not None:
                release_identity(identity)
        if result.exit_code == 1 and result.stderr.startswith("bwrap: "):
            raise SandboxError(f"bwrap failed before the program started: {result.stderr.strip()}")
        return result


def _workspace_args(files: dict[str, bytes], fds: list[int]) -> list[str]:
    """bwrap arguments that create the program's files in /work, each read from a memfd."""
    args = []
    folders = sorted({str(parent) for name in files for parent in Path(name).parents if str(parent) != "."})
    for folder in folders:
        args += ["--dir", f"{WORKDIR}/{folder}"]
    for name, content in files.items():
        fd = os.memfd_create("outrider-sandbox-file")
        fds.append(fd)
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
        args += ["--perms", "0644", "--file", str(fd), f"{WORKDIR}/{name}"]
    return args


def _child_pid(info_fd: int) -> int | None:
    """The host pid of the namespace's init, from bwrap's --info-fd JSON."""
    os.set_blocking(info_fd, False)
    try:
        data = os.read(info_fd, 65536)
    except BlockingIOError:
        return None
    try:
        return int(json.loads(data)["child-pid"])
    except (ValueError, KeyError, TypeError):
        return None


def _close_all(fds: list[int]) -> None:
    """Close and forget each fd (once: a number closed twice may belong to another thread by then)."""
    while fds:
        _close_quietly(fds.pop())


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _probe() -> str | None:
    """Run `true` in a minimal sandbox: catches hosts where user namespaces are disabled."""
    argv = ["bwrap", "--unshare-all", "--unshare-user", "--die-with-parent", *_root_entries(), "--", "/usr/bin/true"]
    if os.geteuid() == 0:  # probe as an unprivileged user, as runs are
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", *argv]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap does not run: {exc}"
    if done.returncode != 0:
        return f"bwrap cannot create namespaces here: {done.stderr.decode(errors='replace').strip()}"
    return None

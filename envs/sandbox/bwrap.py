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

Limits: where the host lets the service create cgroups, each run gets its own
(`cgroups.py`: memory.max, pids.max, cpu.max over all of the run's processes),
which a small launcher joins before it execs the rest; rlimits set by `prlimit`
before bwrap starts (inherited by the program) add per-process caps (and are
all there is without cgroups). As root, bwrap itself runs as the run's leased
unprivileged uid, so RLIMIT_NPROC counts only this run's processes. A seccomp
filter (`seccomp.py`, `--seccomp`) refuses ptrace, mount, namespace, keyring,
bpf... calls to the program. When the outer bwrap is killed (wall time, output
cap) the PID namespace goes with it, so nothing survives; the run's cgroup is
emptied and removed after every run.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
from dataclasses import replace
from pathlib import Path

from outrider.envs.sandbox.base import (
    LimitHit,
    Limits,
    RunExtras,
    RunResult,
    Sandbox,
    SandboxError,
    SandboxOptions,
    find_binary,
)
from outrider.envs.sandbox.cgroups import JOIN_FAILED, RunCgroup
from outrider.envs.sandbox.cgroups import detect as detect_cgroups
from outrider.envs.sandbox.limits import nproc_limit, prlimit_argv
from outrider.envs.sandbox.process import run_process, wait_gone
from outrider.envs.sandbox.seccomp import native_arch, seccomp_program
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
log = logging.getLogger(__name__)


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

    def __init__(self, options: SandboxOptions | None = None, limits: Limits | None = None):
        super().__init__(options, limits)
        self.cgroups, self.cgroups_missing = detect_cgroups(self.options.cgroups, self.options.cgroup_parent)
        self._seccomp = seccomp_program(native_arch()) if self.options.seccomp else None
        log.info("%s", self.describe())

    def describe(self) -> str:
        if self.cgroups is not None:
            limits = f"run limits by {self.cgroups.describe()}, rlimits per process"
        else:
            limits = f"rlimits per process only ({self.cgroups_missing})"
        seccomp = f"seccomp filter on ({native_arch()})" if self._seccomp is not None else "seccomp filter OFF"
        return f"bwrap: {limits}; {seccomp}"

    @classmethod
    def unavailable_reason(cls, options: SandboxOptions | None = None) -> str | None:
        options = options or SandboxOptions()
        binary = find_binary("bwrap")
        if binary is None:
            return "bwrap not found on PATH (Debian/Ubuntu: apt-get install bubblewrap)"
        for helper in ("prlimit", "setpriv"):
            if find_binary(helper) is None:
                return f"{helper} (util-linux) not found on PATH"
        if options.seccomp and native_arch() is None:
            return f"no seccomp syscall table for {os.uname().machine}; set sandbox.seccomp: false to run unfiltered"
        if options.cgroups in ("v1", "v2"):
            setup, why = detect_cgroups(options.cgroups, options.cgroup_parent)
            if setup is None:
                return f"sandbox.cgroups is {options.cgroups!r} but {why}"
        if binary not in _probe_cache:
            _probe_cache[binary] = _probe()
        return _probe_cache[binary]

    def _run(self, files: dict[str, bytes], argv: list[str], limits: Limits, extras: RunExtras | None = None) -> RunResult:
        identity = lease_identity(self.options) if os.geteuid() == 0 else None
        info_read, info_write = os.pipe()
        fds: list[int] = [info_write]
        cgroup = None
        try:
            workspace_args = ["--info-fd", str(info_write), *self._seccomp_args(fds), *_workspace_args(files, fds)]
            if self.cgroups is not None:
                # pids.max counts bwrap and its namespace init too.
                cgroup = self._create_cgroup(limits.memory_bytes, limits.max_processes + BWRAP_OWN_PROCESSES)
            # With a pids cgroup the run is counted exactly; RLIMIT_NPROC (per uid, and
            # approximate when not root) is then left out.
            nproc = None if cgroup is not None else nproc_limit(limits, identity is not None, BWRAP_OWN_PROCESSES)
            command = [*prlimit_argv(limits, nproc), *bwrap_argv(self.options, workspace_args, extras), *argv]
            result = run_process(
                command,
                limits,
                self.name,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                user=identity.uid if identity else None,
                decode_exit=_decode_exit,
                pass_fds=fds,
                after_start=lambda: _close_all(fds),
                prefix=cgroup.join_argv() if cgroup else (),
                watch=(lambda: LimitHit.MEMORY if cgroup.oom_kills() else None) if cgroup else None,
            )
            # bwrap exits as soon as it has the program's status; its namespace
            # init may still be tearing down the namespace's other processes.
            namespace_init = _child_pid(info_read)
            if namespace_init is not None:
                wait_gone([namespace_init], timeout_s=10)
            if cgroup is not None:
                result = _with_cgroup_verdict(result, cgroup)
        finally:
            _close_all(fds)
            _close_quietly(info_read)
            if cgroup is not None:
                self._destroy_cgroup(cgroup)
            if identity is not None:
                release_identity(identity)
        if result.exit_code == 125 and result.stderr.startswith(JOIN_FAILED):
            raise SandboxError(f"bwrap: {result.stderr.strip()}")
        if result.exit_code == 1 and result.stderr.startswith("bwrap: "):
            raise SandboxError(f"bwrap failed before the program started: {result.stderr.strip()}")
        return result

    def _seccomp_args(self, fds: list[int]) -> list[str]:
        if self._seccomp is None:
            return []
        fd = os.memfd_create("outrider-sandbox-seccomp")
        fds.append(fd)
        os.write(fd, self._seccomp)
        os.lseek(fd, 0, os.SEEK_SET)
        return ["--seccomp", str(fd)]

    def _create_cgroup(self, memory_bytes: int, max_pids: int) -> RunCgroup:
        try:
            return self.cgroups.create_run(memory_bytes, max_pids, self.options.cpu_cores)
        except OSError as exc:
            raise SandboxError(f"bwrap: cannot create the run's cgroup: {exc}") from exc

    def _destroy_cgroup(self, cgroup: RunCgroup) -> None:
        try:
            cgroup.destroy()
        except OSError as exc:
            raise SandboxError(f"bwrap: cannot remove the run's cgroup: {exc}") from exc


def _with_cgroup_verdict(result: RunResult, cgroup: RunCgroup) -> RunResult:
    """The result with what the run's cgroup saw: an OOM kill is MEMORY, refused forks of a
    failed program PROCESSES (unless the supervisor stopped the run for wall time or output)."""
    if result.limit_hit in (LimitHit.WALL_TIME, LimitHit.OUTPUT):
        return result
    if cgroup.oom_kills():
        return replace(result, limit_hit=LimitHit.MEMORY)
    if result.limit_hit is LimitHit.NONE and result.exit_code != 0 and cgroup.fork_refusals():
        return replace(result, limit_hit=LimitHit.PROCESSES)
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

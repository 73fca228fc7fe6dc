"""Running one sandbox command on the host: output capping, wall/CPU time, kill.

Shared by the bwrap, gVisor and subprocess backends. The command starts in its
own session (so its whole process group can be killed); stdout and stderr are
read as they come and kept up to `max_output_bytes` each, so a program that
prints gigabytes never fills the host's memory: past the cap it is killed and
the result says OUTPUT.
"""

from __future__ import annotations

import os
import select
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from outrider.envs.sandbox.base import Limits, LimitHit, RunResult, SandboxError

_POLL_S = 0.05
_DRAIN_S = 0.2
_CLK_TCK = os.sysconf("SC_CLK_TCK")

# What a program prints when a limit made a call fail (the limit is then not
# visible in the exit status). Checked only when the program failed.
_STDERR_SIGNS: tuple[tuple[LimitHit, tuple[str, ...]], ...] = (
    (LimitHit.MEMORY, ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")),
    (LimitHit.FILE_SIZE, ("File too large",)),
    (LimitHit.PROCESSES, ("Resource temporarily unavailable", "can't start new thread")),
)


@dataclass
class _Capture:
    limit: int
    data: bytearray
    truncated: bool = False

    def add(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if len(chunk) > room:
            self.truncated = True
        self.data += chunk[: max(room, 0)]


def process_tree(root_pid: int) -> list[int]:
    """`root_pid` and all its descendants (via /proc/<pid>/task/<tid>/children)."""
    found, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        found.append(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                todo += [int(child) for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of these processes (all their threads), seconds."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        after_name = stat.rpartition(")")[2].split()
        total += int(after_name[11]) + int(after_name[12])  # utime, stime (fields 14, 15)
    return total / _CLK_TCK


def classify(exit_code: int, stderr: bytes) -> LimitHit:
    """Which limit ended a program that was not stopped by the supervisor."""
    if exit_code == -signal.SIGXCPU:
        return LimitHit.CPU_TIME
    if exit_code == -signal.SIGXFSZ:
        return LimitHit.FILE_SIZE
    if exit_code == 0:
        return LimitHit.NONE
    tail = stderr[-4096:].decode(errors="replace")
    for limit, signs in _STDERR_SIGNS:
        if any(sign in tail for sign in signs):
            return limit
    return LimitHit.NONE


def run_process(
    argv: list[str],
    limits: Limits,
    backend: str,
    *,
    env: dict[str, str],
    cwd: str | None = None,
    user: int | None = None,
    decode_exit: Callable[[int], int] = lambda code: code,
    watch_cpu: bool = False,
    kill: Callable[[subprocess.Popen, list[int]], None] | None = None,
    pass_fds: Sequence[int] = (),
    after_start: Callable[[], object] | None = None,
    prefix: Sequence[str] = (),
    watch: Callable[[], LimitHit | None] | None = None,
) -> RunResult:
    """Run `argv` (already wrapped by the backend) and enforce wall time and output caps.

    `watch_cpu`: also measure the CPU time of the whole host process tree and kill
    it past `limits.cpu_time_s` (for backends where RLIMIT_CPU does not reach the
    program). `kill(process, tree)` is the backend's extra teardown; `after_start()`
    runs once the command has started (e.g. to close the parent's copies of `pass_fds`).
    `prefix` goes before everything, the uid change included (bwrap's cgroup launcher,
    which must still be root). `watch()` is polled like the CPU time; a limit it returns
    stops the run (bwrap: the run's cgroup saw an OOM kill).
    """
    if user is not None:
        # Not Popen(user=...): that makes CPython fork() instead of vfork(), and a
        # fork of a multi-threaded gRPC server runs gRPC's atfork handlers, which
        # can crash the child. setpriv (util-linux) changes the ids after exec.
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--", *argv]
    argv = [*prefix, *argv]
    start = time.perf_counter()
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
    except OSError as exc:
        raise SandboxError(f"{backend}: could not start {argv[0]}: {exc}") from exc
    if after_start is not None:
        after_start()
    captures = {process.stdout.fileno(): _Capture(limits.max_output_bytes, bytearray()),
                process.stderr.fileno(): _Capture(limits.max_output_bytes, bytearray())}
    stopped_by: LimitHit | None = None
    deadline = start + limits.wall_time_s
    next_cpu_check = start
    selector = selectors.DefaultSelector()
    for stream in (process.stdout, process.stderr):
        os.set_blocking(stream.fileno(), False)
        selector.register(stream.fileno(), selectors.EVENT_READ)
    # A pidfd becomes readable when the command exits: no polling for its end.
    pidfd = os.pidfd_open(process.pid)
    selector.register(pidfd, selectors.EVENT_READ)
    exited = False
    try:
        while stopped_by is None and (not exited or len(selector.get_map()) > 0):
            now = time.perf_counter()
            if now >= deadline:
                stopped_by = None if exited else LimitHit.WALL_TIME
                break
            if (watch_cpu or watch is not None) and now >= next_cpu_check:
                if watch_cpu and cpu_seconds(process_tree(process.pid)) > limits.cpu_time_s:
                    stopped_by = LimitHit.CPU_TIME
                    break
                if watch is not None and (stopped_by := watch()) is not None:
                    break
                next_cpu_check = now + 2 * _POLL_S
            for key, _ in selector.select(min(_POLL_S, deadline - now)):
                if key.fd == pidfd:
                    selector.unregister(pidfd)
                    exited = True
                    # Output still in the pipes is read; a leftover child that holds
                    # them open (only possible without a PID namespace) is not waited for.
                    deadline = min(deadline, time.perf_counter() + _DRAIN_S)
                    continue
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                captures[key.fd].add(chunk)
                if captures[key.fd].truncated:
                    stopped_by = LimitHit.OUTPUT
    finally:
        # Also on a normal exit: children left in the process group (possible
        # only without a PID namespace) must not outlive the run.
        still_running = stopped_by is not None or process.poll() is None
        _kill(process, kill if still_running else None, full_tree=still_running)
        selector.close()
        os.close(pidfd)
        process.stdout.close()
        process.stderr.close()
    exit_code = decode_exit(process.wait())
    duration = time.perf_counter() - start
    out, err = captures.values()
    limit_hit = stopped_by or classify(exit_code, bytes(err.data))
    return RunResult(
        stdout=out.data.decode(errors="replace"),
        stderr=err.data.decode(errors="replace"),
        exit_code=exit_code,
        duration_s=duration,
        limit_hit=limit_hit,
        backend=backend,
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
    )


def _kill(process: subprocess.Popen, extra: Callable | None, full_tree: bool) -> None:
    """SIGKILL the run's process group and (when still running) its process tree; return once gone."""
    # Only processes alive now: a pid seen earlier may have been reused since.
    tree = process_tree(process.pid) if full_tree else [process.pid]
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if extra is not None:
        extra(process, tree)
    if full_tree:
        # Processes in other sessions (bwrap's namespace init, gVisor's sandbox)
        # are not reached by killpg; they would die of PDEATHSIG a moment later,
        # but the run is not over until they are gone.
        others = [pid for pid in tree if pid != process.pid]
        for pid in others:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired as exc:
        raise SandboxError(f"pid {process.pid} survived SIGKILL for 10 s") from exc
    if full_tree:
        wait_gone(others, timeout_s=10)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def wait_gone(pids: list[int], timeout_s: float) -> None:
    """Return once none of `pids` runs any more (zombies count as gone)."""
    deadline = time.monotonic() + timeout_s
    for pid in pids:
        try:
            pidfd = os.pidfd_open(pid)
        except (ProcessLookupError, OSError):
            continue
        try:
            # Readable once the process has exited; the /proc check guards against
            # a reused pid that was already gone before pidfd_open.
            while _alive(pid):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SandboxError(f"sandbox process {pid} survived SIGKILL for {timeout_s:g} s")
                if select.select([pidfd], [], [], min(remaining, _POLL_S))[0]:
                    break
        finally:
            os.close(pidfd)

"""Process helpers shared by the supervisors (local stack, learner launcher) and the services."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing.spawn
import os
import random
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from multiprocessing import resource_tracker
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A loopback TCP port free now, for a server started next (a service of the local
    stack, an embedded Redis, the learner's rendezvous) whose address others must know
    before it binds.

    Drawn at random from the ports below the kernel's ephemeral range (32768-60999 by
    default): there the kernel hands out the source port of every outgoing connection,
    and a busy test run opens thousands (gRPC, Redis), so a port it chose with bind(0)
    was taken by one before its server bound it (CI, 2026-12-04: "Address already in
    use" for an env service). Below the range only another explicit bind can take it.
    Falls back to the kernel's choice when no port there is free."""
    low = _ephemeral_low()
    below = range(max(1024, low - 20000), low)
    for _ in range(64 if below else 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", _RANDOM.choice(below)))
            except OSError:
                continue
            return sock.getsockname()[1]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_RANDOM = random.SystemRandom()
"""Not the global generator, which a seeded run makes draw the same ports in every process."""


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (one of another user counts: it exists)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send `sig` to this process when its parent dies.

    Supervised children (services under `outrider up`, learner ranks under
    torchrun) call this so that a SIGKILLed supervisor leaves no orphans.
    """
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig)


_LAUNCHER = """\
import os, sys
from outrider.process import die_with_parent
die_with_parent(int(sys.argv[1]))
if os.getppid() != int(sys.argv[2]):
    sys.exit("the supervisor ended before this process started")
os.execvp(sys.argv[3], sys.argv[3:])
"""


def dying_with_this_process(argv: Sequence[str], sig: int = signal.SIGTERM) -> list[str]:
    """`argv`, to be started so that it gets `sig` when this process dies.

    Instead of `Popen(..., preexec_fn=die_with_parent)`: a preexec_fn runs Python in the
    forked child before exec, and a parent that holds gRPC channels then now and then
    aborts there (gRPC's fork handlers: "epoll_wait error: Bad file descriptor",
    SIGABRT). Here the child is a fresh interpreter that asks for the signal itself,
    checks that its parent is still this process, and becomes `argv` (the request
    survives exec)."""
    return [sys.executable, "-c", _LAUNCHER, str(int(sig)), str(os.getpid()), *argv]


# (signal, pid of the parent) while `children_die_with_this_process` is active; read by the
# at-fork hook in every child forked meanwhile.
_fork_rule: tuple[int, int] | None = None
_fork_hook_installed = False
_lock = threading.Lock()


def _after_fork_in_child() -> None:
    if _fork_rule is not None:
        sig, parent = _fork_rule
        die_with_parent(sig)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)


@contextlib.contextmanager
def children_die_with_this_process(sig: int = signal.SIGKILL) -> Iterator[None]:
    """Processes that `multiprocessing` starts meanwhile die with this one (PR_SET_PDEATHSIG).

    For libraries that start their own processes and offer no hook to run code
    in them at start (vLLM's EngineCore): a *spawned* child is started through a
    /bin/sh wrapper that sets the signal and then execs the interpreter with the
    original arguments (the setting survives exec); a *forked* child sets it in
    an at-fork hook. Either child then checks that its parent is still this
    process (had it died in between, the signal would never come).

    Linux sends the signal when the *thread* that started the child ends, so
    call this on a thread that lives as long as the children should (a service's
    main thread, or the thread that runs its event loop).
    """
    global _fork_rule, _fork_hook_installed
    with _lock:
        if not _fork_hook_installed:
            os.register_at_fork(after_in_child=_after_fork_in_child)
            _fork_hook_installed = True
        # The resource tracker is spawned on first use: start it now, outside the wrapper, so it
        # outlives this process and still unlinks the shared memory its dead children leave.
        resource_tracker.ensure_running()
        folder = Path(tempfile.mkdtemp(prefix="outrider-pdeathsig-"))
        wrapper = folder / "python"
        original = multiprocessing.spawn.get_executable()
        wrapper.write_text(_spawn_wrapper(os.fsdecode(original), sig, os.getpid()))
        wrapper.chmod(0o700)
        multiprocessing.spawn.set_executable(str(wrapper))
        _fork_rule = (sig, os.getpid())
        try:
            yield
        finally:
            _fork_rule = None
            multiprocessing.spawn.set_executable(original)
            shutil.rmtree(folder, ignore_errors=True)


def _spawn_wrapper(python: str, sig: int, parent: int) -> str:
    # `python -c CODE PYTHON ARGS...`: sys.argv is ['-c', PYTHON, ARGS...], so argv[1:] is the
    # original command line. -I -S: this first interpreter only calls prctl and execs.
    code = (
        f"import ctypes, os, sys; ctypes.CDLL(None, use_errno=True).prctl({_PR_SET_PDEATHSIG}, {int(sig)}); "
        f"os.getppid() == {parent} or os._exit(1); os.execv(sys.argv[1], sys.argv[1:])"
    )
    quoted = shlex.quote(python)
    return f'#!/bin/sh\nexec {quoted} -I -S -c {shlex.quote(code)} {quoted} "$@"\n'


STALL_EXIT_CODE = 75
"""Exit status of a process its watchdog ended (EX_TEMPFAIL of sysexits.h: a temporary
failure, try again). Supervisors restart it from its durable state."""


class Stalled(RuntimeError):
    """A watched loop made no progress for its stall limit."""


class Watchdog:
    """Notices a loop that stops making progress, so that a hang becomes a named error.

    The loop calls `beat(what)` after each unit of progress, `what` saying what it does
    next. `check()` (called by the watchdog's own thread after `start()`, or by the loop
    itself when the loop cannot hang between checks) finds a stall when

        active() and now − last_beat > stall_s

    and then calls `on_stall` once with a `Stalled` error that names the loop, the silence
    and the last beat: "learner: no progress for 600 s (last: waiting for groups)". The
    clock does not run while `active()` is false (a rollout worker with no task is idle,
    not stalled): the silence counts from the later of the last beat and the moment the
    loop last became active, as seen by the checks. `stall_s` 0 or None: off.
    """

    def __init__(self, name: str, stall_s: float | None, on_stall, *, clock=None, active=None, poll_s: float | None = None):
        self.name = name
        self.stall_s = stall_s or 0.0
        self.on_stall = on_stall
        self.clock = clock or time.monotonic
        self.active = active or (lambda: True)
        # A check every stall_s / 20 (at most 1 s) notices a stall at most 5% late.
        self.poll_s = poll_s if poll_s is not None else min(1.0, self.stall_s / 20)
        self._last = (self.clock(), "starting")
        self._fired = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.stall_s > 0

    def beat(self, what: str) -> None:
        """Progress: the stall clock starts again; `what` is what the loop does next."""
        self._last = (self.clock(), what)  # one tuple store: atomic for the checking thread

    @property
    def last(self) -> str:
        return self._last[1]

    def check(self) -> Stalled | None:
        """The stall, if there is one now (`on_stall` is called the first time only)."""
        if not self.enabled:
            return None
        at, what = self._last
        now = self.clock()
        if not self.active():
            self._last = (now, what)  # idle time is not silence
            return None
        silent = now - at
        if silent <= self.stall_s:
            return None
        shown = f"{silent:.0f}" if silent >= 10 else f"{silent:.1f}"
        error = Stalled(f"{self.name}: no progress for {shown} s (last: {what}); stall limit {self.stall_s:g} s")
        if not self._fired:
            self._fired = True
            self.on_stall(error)
        return error

    def rearm(self) -> None:
        """After a recovery: the next stall is reported again, counted from now."""
        self._fired = False
        self.beat(self.last)

    def start(self) -> Watchdog:
        """Check on a daemon thread every `poll_s` (no-op when off)."""
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._watch, name=f"watchdog-{self.name}", daemon=True)
            self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            if self.check() is not None:
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        self._thread = None


def exit_stalled(error: Stalled) -> None:
    """`on_stall` of a supervised process: log the named error and end the process at once
    with STALL_EXIT_CODE (its main thread may be stuck in C code that no exception reaches;
    its work is durable elsewhere, and its supervisor starts it again)."""
    import logging

    logging.getLogger("outrider.watchdog").error("%s; exiting with status %d for a restart", error, STALL_EXIT_CODE)
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    with contextlib.suppress(Exception):
        sys.stderr.flush()
        sys.stdout.flush()
    os._exit(STALL_EXIT_CODE)

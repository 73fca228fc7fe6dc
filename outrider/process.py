"""Process helpers shared by the supervisors (local stack, learner launcher) and the services."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing.spawn
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from multiprocessing import resource_tracker
from pathlib import Path

_PR_SET_PDEATHSIG = 1


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

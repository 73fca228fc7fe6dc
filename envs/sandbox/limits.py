"""rlimits for the bwrap and subprocess backends, applied by util-linux `prlimit`.

`prlimit --as=... -- CMD` sets its own limits and execs CMD, so they are in
place before the first instruction of the program and inherited by everything
it starts. They count per process (RLIMIT_NPROC: per uid): four processes may each
use RLIMIT_AS bytes. bwrap runs add per-run cgroups where the host allows
(`outrider.envs.sandbox.cgroups`), which count the run as a whole. RLIMIT_CPU is in whole seconds: the soft limit (SIGXCPU, which kills
a program that does not handle it) is the limit rounded up, the hard limit
(SIGKILL) one second later.
"""

from __future__ import annotations

import math
import os

from outrider.envs.sandbox.base import Limits


def prlimit_argv(limits: Limits, nproc: int | None) -> list[str]:
    """`nproc` None: RLIMIT_NPROC is left as it is (a cgroup's pids.max counts the run instead)."""
    cpu = max(1, math.ceil(limits.cpu_time_s))
    return [
        "prlimit",
        f"--as={limits.memory_bytes}",
        f"--cpu={cpu}:{cpu + 1}",
        *([f"--nproc={nproc}"] if nproc is not None else []),
        f"--fsize={limits.max_file_bytes}",
        "--core=0",
        "--",
    ]


def nproc_limit(limits: Limits, own_uid: bool, wrapper_processes: int) -> int:
    """RLIMIT_NPROC for a run: it counts every process of the real uid, host-wide.

    With a leased uid (as root) only the run's own processes count, plus the
    backend's wrapper processes. Without one (not root) the service user's
    other processes count too, so they are added: the limit is then approximate
    (a process the user starts meanwhile takes a slot).
    """
    base = limits.max_processes + wrapper_processes
    if own_uid:
        return base
    return base + _processes_of(os.getuid())


def _processes_of(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            # Threads count against RLIMIT_NPROC as well.
            if entry.stat().st_uid == uid:
                count += len(os.listdir(f"/proc/{entry.name}/task"))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return count

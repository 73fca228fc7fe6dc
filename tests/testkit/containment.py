"""Probes shared by the sandbox containment suites (tests/integration/sandbox/test_sandbox_*.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from outrider.envs.sandbox import Limits

# Small limits so every case ends quickly; each test states the ones it relies on.
TEST_LIMITS = Limits(
    wall_time_s=4.0,
    cpu_time_s=1.0,
    memory_bytes=256 * 1024 * 1024,
    max_processes=16,
    max_output_bytes=64 * 1024,
    max_file_bytes=1024 * 1024,
)


def host_pids_mentioning(*needles: str) -> list[int]:
    """Host processes whose command line contains any of `needles` (this process excluded)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(needle in cmdline for needle in needles):
            found.append(int(entry.name))
    return found


def run_json(sandbox, code: str, *args: str, limits=TEST_LIMITS):
    """Run `code` (which prints one JSON line last) and return (result, parsed line)."""
    result = sandbox.run(code, limits, command=["python3", "main.py", *args])
    assert result.stdout.strip(), f"no output; stderr: {result.stderr[-2000:]}"
    return result, json.loads(result.stdout.strip().splitlines()[-1])


def assert_nothing_left(sandbox, *needles: str) -> None:
    """No host process of the run remains and its workspace is gone."""
    root = str(sandbox.options.workspace_root)
    assert host_pids_mentioning(root, *needles) == []
    leftover = host_pids_of_uids(sandbox.options.uid_base, sandbox.options.uid_base + 65536)
    assert leftover == [], [(pid, Path(f"/proc/{pid}/status").read_text()[:300]) for pid in leftover]
    assert list(Path(root).glob("run-*")) == []
    assert leftover_run_cgroups(sandbox) == []


def leftover_run_cgroups(sandbox) -> list[Path]:
    """Run cgroups of this test process that still exist (bwrap with cgroups; [] otherwise).

    Other processes on the machine may be running sandboxes under the same parent at the
    same time, so only names with this process's pid (`run-<pid>-<token>`) count."""
    setup = getattr(sandbox, "cgroups", None)
    if setup is None:
        return []
    return [path for parent in setup.parents.values() for path in parent.glob(f"run-{os.getpid()}-*")]


def host_pids_of_uids(low: int, high: int) -> list[int]:
    """Live host processes whose uid is in [low, high): the runs' leased uids.

    Zombies are dead: bwrap's PID-namespace init can linger as one for a moment,
    until the host's init reaps it.
    """
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if low <= entry.stat().st_uid < high and _state(entry.name) != "Z":
                    found.append(int(entry.name))
            except FileNotFoundError:
                continue
    return found


def _state(pid: str) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]

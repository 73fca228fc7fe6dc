"""Per-run cgroups: memory, process and CPU limits over *all* of a run's processes.

rlimits count per process: under RLIMIT_AS = 512 MiB four processes may hold
4 × 300 MiB. A cgroup counts the run as a whole, so where the host lets the
service create cgroups, each bwrap run gets its own:

| limit | cgroup v2 | cgroup v1 |
| --- | --- | --- |
| memory (`memory_bytes`) | `memory.max`, `memory.swap.max = 0`, `memory.oom.group = 1` | `memory.limit_in_bytes` (+ `memory.memsw.limit_in_bytes`: no swap beyond it) |
| processes (`max_processes` + bwrap's 2) | `pids.max` | `pids.max` |
| CPU rate (`cpu_cores`) | `cpu.max = "quota period"` | `cpu.cfs_quota_us`, `cpu.cfs_period_us` |

with period = 100 ms and quota = cpu_cores × period. Over `memory.max` the
kernel's OOM killer ends the run (v2: every process of it at once, `oom.group`;
v1: the largest, and the supervisor then stops the rest), and the run reports
MEMORY. `detect()` runs once when the sandbox is built: v2 when its memory and
pids controllers can be delegated to children, else v1 when memory and pids
hierarchies are writable, else none (rlimits only). The program joins its
cgroup before its first instruction: a tiny `/bin/sh` launcher (`join_argv`)
writes its own pid into the run's `cgroup.procs` files and then execs
setpriv/prlimit/bwrap, so every process of the run is born inside. After the
run the cgroup's leftover processes are killed and its directories removed.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CPU_PERIOD_US = 100_000
V1_DEFAULT_PARENT = "outrider-sandbox"
V2_SERVICE_LEAF = "outrider-service"
REQUIRED = ("memory", "pids")
OPTIONAL = ("cpu",)
JOIN_FAILED = "outrider-sandbox: cannot join the run's cgroup"
# `sh -c JOIN_SCRIPT sh FILE... -- COMMAND...`: $$ is the shell's pid, which exec keeps. On
# failure JOIN_FAILED is the first thing on stderr (the shell's own message is dropped).
JOIN_SCRIPT = (
    'while [ "$1" != -- ]; do { echo $$ > "$1"; } 2>/dev/null || { echo "' + JOIN_FAILED + ' $1" >&2; exit 125; }; '
    'shift; done; '
    'shift; exec "$@"'
)


class CgroupError(OSError):
    """Creating, limiting or removing a run's cgroup failed."""


@dataclass(frozen=True)
class Mount:
    point: Path
    root: str
    """The hierarchy path mounted at `point` ("/" unless the mount is of a subtree)."""


def _mounts() -> tuple[Mount | None, dict[str, Mount]]:
    """(the cgroup2 mount, {v1 controller: its mount}) from /proc/self/mountinfo."""
    v2, v1 = None, {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        # id parent major:minor root mountpoint options [optional...] - fstype source superoptions
        left, _, right = line.partition(" - ")
        fields, after = left.split(), right.split()
        if len(fields) < 5 or len(after) < 3:
            continue
        mount = Mount(Path(fields[4]), fields[3])
        if after[0] == "cgroup2" and v2 is None:
            v2 = mount
        elif after[0] == "cgroup":
            for option in after[2].split(","):
                v1.setdefault(option, mount)
    return v2, v1


def _own_paths() -> dict[str, str]:
    """{controller (v1) or "" (v2): this process's cgroup path}, from /proc/self/cgroup."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def _below(mount: Mount, hierarchy_path: str) -> Path:
    """Where a hierarchy path is under a mount (which may show only a subtree of it)."""
    relative = hierarchy_path
    if mount.root != "/" and relative.startswith(mount.root):
        relative = relative[len(mount.root):]
    return mount.point / relative.lstrip("/")


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise CgroupError(exc.errno, f"cannot write {value!r} to {path}: {exc.strerror}") from None


def _counter(path: Path, key: str) -> int:
    """The `key N` line of a flat-keyed cgroup file (memory.events, pids.events, memory.oom_control)."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


@dataclass(frozen=True)
class CgroupSetup:
    """Where this service creates its runs' cgroups (found once by `detect`)."""

    version: int
    """2 (unified hierarchy) or 1 (one hierarchy per controller)."""
    parents: dict[str, Path]
    """{controller: folder of run cgroups}; v2: one entry, "" (every controller in one folder)."""
    controllers: tuple[str, ...]
    """The controllers limited (memory and pids always; cpu where available)."""

    def describe(self) -> str:
        where = ", ".join(sorted({str(path) for path in self.parents.values()}))
        return f"cgroup v{self.version} ({', '.join(self.controllers)}) under {where}"

    def create_run(self, memory_bytes: int, max_pids: int, cpu_cores: float | None) -> RunCgroup:
        """A fresh cgroup with these limits, not yet holding any process."""
        name = f"run-{os.getpid()}-{secrets.token_hex(6)}"
        run = RunCgroup(self, {controller: parent / name for controller, parent in self.parents.items()})
        try:
            # Co-mounted v1 controllers (e.g. cpu,cpuacct with another) share one folder.
            for folder in dict.fromkeys(run.folders.values()):
                folder.mkdir()
            run.apply(memory_bytes, max_pids, cpu_cores)
        except (OSError, CgroupError):
            run.destroy()
            raise
        return run


@dataclass
class RunCgroup:
    """One run's cgroup (one folder per v1 controller, one in v2)."""

    setup: CgroupSetup
    folders: dict[str, Path]

    def _folder(self, controller: str) -> Path:
        return self.folders["" if self.setup.version == 2 else controller]

    def apply(self, memory_bytes: int, max_pids: int, cpu_cores: float | None) -> None:
        memory, pids = self._folder("memory"), self._folder("pids")
        quota = None if cpu_cores is None else max(1000, round(cpu_cores * CPU_PERIOD_US))
        if self.setup.version == 2:
            _write(memory / "memory.max", str(memory_bytes))
            if (memory / "memory.swap.max").exists():
                _write(memory / "memory.swap.max", "0")
            # Out of memory, the kernel kills the whole run at once rather than one process of it.
            if (memory / "memory.oom.group").exists():
                _write(memory / "memory.oom.group", "1")
            _write(pids / "pids.max", str(max_pids))
            if "cpu" in self.setup.controllers and quota is not None:
                _write(self._folder("cpu") / "cpu.max", f"{quota} {CPU_PERIOD_US}")
            return
        # v1: memsw (memory + swap) must stay >= limit_in_bytes, so the latter goes first.
        _write(memory / "memory.limit_in_bytes", str(memory_bytes))
        if (memory / "memory.memsw.limit_in_bytes").exists():
            _write(memory / "memory.memsw.limit_in_bytes", str(memory_bytes))
        _write(pids / "pids.max", str(max_pids))
        if "cpu" in self.setup.controllers and quota is not None:
            cpu = self._folder("cpu")
            _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(cpu / "cpu.cfs_quota_us", str(quota))

    def join_argv(self) -> list[str]:
        """The launcher that puts itself into this cgroup, then execs what follows it."""
        files = [str(folder / "cgroup.procs") for folder in dict.fromkeys(self.folders.values())]
        return ["/bin/sh", "-c", JOIN_SCRIPT, "sh", *files, "--"]

    def oom_kills(self) -> int:
        """Processes of the run the kernel killed for exceeding its memory limit."""
        memory = self._folder("memory")
        if self.setup.version == 2:
            return _counter(memory / "memory.events", "oom_kill")
        return _counter(memory / "memory.oom_control", "oom_kill")

    def fork_refusals(self) -> int:
        """Forks (and thread creations) refused because the run was at pids.max."""
        return _counter(self._folder("pids") / "pids.events", "max")

    def pids(self) -> list[int]:
        found = set()
        for folder in self.folders.values():
            try:
                found.update(int(pid) for pid in (folder / "cgroup.procs").read_text().split())
            except FileNotFoundError:
                continue
        return sorted(found)

    def destroy(self, timeout_s: float = 10.0) -> None:
        """Kill what is left in the cgroup and remove its folders."""
        deadline = time.monotonic() + timeout_s
        for folder in self.folders.values():
            if self.setup.version == 2 and (folder / "cgroup.kill").exists():
                try:
                    (folder / "cgroup.kill").write_text("1")
                except OSError:
                    pass
        while True:
            # Pids listed in the run's own cgroup can only be the run's processes.
            left = self.pids()
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            busy = []
            for folder in self.folders.values():
                try:
                    folder.rmdir()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        raise CgroupError(exc.errno, f"cannot remove {folder}: {exc.strerror}") from None
                    busy.append(folder)
            if not busy:
                return
            if time.monotonic() > deadline:
                raise CgroupError(errno.EBUSY, f"run cgroup {busy[0]} still busy after {timeout_s:g} s (pids {left})")
            time.sleep(0.01)


def _try_v2(parent: str | None) -> tuple[CgroupSetup | None, str]:
    mount, _ = _mounts()
    if mount is None:
        return None, "no cgroup2 mount"
    own = _below(mount, _own_paths().get("", "/"))
    folder = _below(mount, parent) if parent else own
    try:
        available = (folder / "cgroup.controllers").read_text().split()
    except OSError as exc:
        return None, f"cgroup v2: cannot read {folder}/cgroup.controllers: {exc.strerror}"
    missing = [name for name in REQUIRED if name not in available]
    if missing:
        return None, f"cgroup v2: controllers {', '.join(missing)} not delegated to {folder} (it has: {' '.join(available) or 'none'})"
    controllers = tuple(name for name in (*REQUIRED, *OPTIONAL) if name in available)
    enable = " ".join(f"+{name}" for name in controllers)
    try:
        _write(folder / "cgroup.subtree_control", enable)
    except CgroupError as exc:
        # "No internal processes": a cgroup that holds processes cannot hand controllers to
        # children. The usual fix in a delegated container: the service moves into a leaf.
        if exc.errno != errno.EBUSY or folder != own:
            return None, f"cgroup v2: {exc}"
        try:
            (folder / V2_SERVICE_LEAF).mkdir(exist_ok=True)
            _write(folder / V2_SERVICE_LEAF / "cgroup.procs", str(os.getpid()))
            _write(folder / "cgroup.subtree_control", enable)
        except (OSError, CgroupError) as again:
            return None, f"cgroup v2: {folder} holds processes and controllers cannot be enabled for children: {again}"
    return CgroupSetup(2, {"": folder}, controllers), ""


def _try_v1(parent: str | None) -> tuple[CgroupSetup | None, str]:
    _, mounts = _mounts()
    missing = [name for name in REQUIRED if name not in mounts]
    if missing:
        return None, f"cgroup v1: no {', '.join(missing)} hierarchy mounted"
    controllers = tuple(name for name in (*REQUIRED, *OPTIONAL) if name in mounts)
    parents = {}
    for name in controllers:
        folder = mounts[name].point / (parent or V1_DEFAULT_PARENT).lstrip("/")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not os.access(folder, os.W_OK):
                raise PermissionError(errno.EACCES, "not writable")
        except OSError as exc:
            if name in REQUIRED:
                return None, f"cgroup v1: cannot use {folder}: {exc.strerror}"
            controllers = tuple(c for c in controllers if c != name)
            continue
        parents[name] = folder
    return CgroupSetup(1, parents, controllers), ""


_detected: dict[tuple[str, str | None], tuple[CgroupSetup | None, str]] = {}


def detect(mode: str = "auto", parent: str | None = None) -> tuple[CgroupSetup | None, str]:
    """(the setup, "") or (None, why not): `mode` "auto" tries v2 then v1, "v2"/"v1" only
    that one, "off" none. Probed with a real cgroup (created, limited, removed); cached."""
    key = (mode, parent)
    if key in _detected:
        return _detected[key]
    if mode == "off":
        found: tuple[CgroupSetup | None, str] = (None, "cgroups turned off (sandbox.cgroups: off)")
    else:
        reasons = []
        found = (None, "")
        for version, attempt in (("v2", _try_v2), ("v1", _try_v1)):
            if mode not in ("auto", version):
                continue
            setup, why = attempt(parent)
            if setup is not None:
                why = _probe(setup)
            if setup is not None and not why:
                found = (setup, "")
                break
            reasons.append(why)
        if found[0] is None:
            found = (None, "; ".join(reasons))
    _detected[key] = found
    return found


def _probe(setup: CgroupSetup) -> str:
    """Create, limit and remove one cgroup: "" when that works, else why not."""
    try:
        setup.create_run(64 * 1024 * 1024, 8, 1.0).destroy()
    except (OSError, CgroupError) as exc:
        return f"cgroup v{setup.version}: a run cgroup cannot be created: {exc}"
    return ""

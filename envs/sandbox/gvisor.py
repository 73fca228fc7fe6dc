"""gVisor backend: the program runs on gVisor's user-space kernel (runsc).

`runsc do` is not used: it mounts the whole host filesystem (read-only) into the
sandbox, so /etc/shadow or /root would be readable. Instead each run gets an
OCI bundle whose root is an empty read-only skeleton with the same mounts as
the bwrap backend: /usr read-only, the workspace at /work, private /proc, /dev
and /tmp, nothing else of the host; `--network=none` (loopback only).

    runsc --root <run>/state --network=none --ignore-cgroups run --bundle <run>/bundle <id>

Needs root (runsc creates namespaces and chroots its gofer); `--ignore-cgroups`
because containers often have no writable cgroup hierarchy. State lives in the
run's private folder, so a killed run leaves nothing behind. Limits: RLIMIT_AS,
RLIMIT_NPROC and RLIMIT_FSIZE are enforced by gVisor itself; RLIMIT_CPU is not
(runsc 2022-12), so CPU time is measured from the host over the sandbox's
process tree (Sentry included) and the sandbox killed past the limit.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import uuid
from pathlib import Path

from outrider.envs.sandbox.base import Limits, RunResult, Sandbox, SandboxError, SandboxOptions, find_binary
from outrider.envs.sandbox.bwrap import _TOP_LEVEL_LINKS, SANDBOX_ENV, WORKDIR, _decode_exit
from outrider.envs.sandbox.process import run_process

NOBODY = 65534


def rootfs_skeleton(workspace_root: Path) -> Path:
    """An empty root with mount points and the /bin, /lib... links of the host; shared by runs."""
    root = workspace_root / "gvisor-rootfs"
    if root.is_dir():  # built in a staging folder and renamed: complete when present
        return root
    staging = workspace_root / f"gvisor-rootfs.{uuid.uuid4().hex}"
    staging.mkdir(parents=True, mode=0o755)
    for folder in ("usr", "proc", "dev", "tmp", WORKDIR.lstrip("/")):
        (staging / folder).mkdir(mode=0o755)
    for name in _TOP_LEVEL_LINKS:
        host = Path("/") / name
        if host.is_symlink():
            (staging / name).symlink_to(os.readlink(host))
        elif host.is_dir():
            (staging / name).mkdir(mode=0o755)
    try:
        staging.rename(root)
    except OSError:  # another run created it meanwhile
        subprocess.run(["rm", "-rf", str(staging)], check=False)
    return root


def oci_config(argv: list[str], limits: Limits, rootfs: Path, workspace: Path, uid: int, options: SandboxOptions) -> dict:
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", f"size={options.tmp_bytes}"]},
        {"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]},
    ]
    for name in _TOP_LEVEL_LINKS:
        host = Path("/") / name
        if host.is_dir() and not host.is_symlink():
            mounts.append({"destination": str(host), "type": "bind", "source": str(host), "options": ["rbind", "ro"]})
    mounts += [{"destination": p, "type": "bind", "source": p, "options": ["rbind", "ro"]} for p in options.ro_binds]
    mounts.append({"destination": WORKDIR, "type": "bind", "source": str(workspace), "options": ["rbind", "rw"]})
    cpu = max(1, math.ceil(limits.cpu_time_s))
    return {
        "ociVersion": "1.0.0",
        "process": {
            "terminal": False,
            "user": {"uid": uid, "gid": uid},
            "args": argv,
            "env": [f"{key}={value}" for key, value in SANDBOX_ENV.items()],
            "cwd": WORKDIR,
            "noNewPrivileges": True,
            "capabilities": {name: [] for name in ("bounding", "effective", "inheritable", "permitted", "ambient")},
            "rlimits": [
                {"type": "RLIMIT_AS", "soft": limits.memory_bytes, "hard": limits.memory_bytes},
                {"type": "RLIMIT_NPROC", "soft": limits.max_processes, "hard": limits.max_processes},
                {"type": "RLIMIT_FSIZE", "soft": limits.max_file_bytes, "hard": limits.max_file_bytes},
                {"type": "RLIMIT_CPU", "soft": cpu, "hard": cpu + 1},
                {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
            ],
        },
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": "sandbox",
        "mounts": mounts,
        "linux": {"namespaces": [{"type": kind} for kind in ("pid", "network", "ipc", "uts", "mount")]},
    }


def _kill_tree(_process: subprocess.Popen, tree: list[int]) -> None:
    # The Sentry and its stub processes run in their own session: kill them by pid.
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class GVisorSandbox(Sandbox):
    name = "gvisor"

    @classmethod
    def unavailable_reason(cls, options: SandboxOptions | None = None) -> str | None:
        if find_binary("runsc") is None:
            return "runsc not found on PATH (Debian/Ubuntu: apt-get install runsc)"
        if os.geteuid() != 0:
            return "the gvisor backend needs root (runsc sets up namespaces and a chroot for its gofer)"
        return None

    def _execute(self, workspace, argv: list[str], limits: Limits) -> RunResult:
        rootfs = rootfs_skeleton(self.options.workspace_root)
        bundle = workspace.root / "bundle"
        state = workspace.root / "state"
        bundle.mkdir(mode=0o700)
        state.mkdir(mode=0o700)
        uid = workspace.identity.uid if workspace.identity else NOBODY
        config = oci_config(argv, limits, rootfs, workspace.path, uid, self.options)
        (bundle / "config.json").write_text(json.dumps(config))
        container = f"outrider-{uuid.uuid4().hex[:16]}"
        command = ["runsc", "--root", str(state), "--network=none", "--ignore-cgroups", "run", "--bundle", str(bundle), container]
        result = run_process(
            command,
            limits,
            self.name,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            decode_exit=_decode_exit,
            watch_cpu=True,
            kill=_kill_tree,
        )
        if result.exit_code == 128 and result.stderr.startswith("running container:"):
            raise SandboxError(f"runsc failed: {result.stderr.strip()}")
        return result

"""Inside a pod's namespaces: make the container's filesystem view and credentials, then exec
its process (tests/testkit/chart_pods.py starts this as root under
`ip netns exec POD unshare --uts`, so it is already in the pod's network namespace and in a
mount namespace of its own whose mounts do not propagate back).

    python -m testkit.chart_pod_launch SPEC.json

What a container runtime does, with the host's root filesystem as the image: a root of its
own (an overlay over the host's /, so that mount points are made in the container's layer
and never on the host), the volume mounts (bind mounts, read-only ones remounted
read-only), a private /dev/shm, the pod's /etc/hosts, the folders of the interpreter
reachable by a non-root user, the root read-only (readOnlyRootFilesystem), the hostname,
and then the securityContext:
capabilities dropped from the bounding set, no_new_privs, the pod's uid, gid and fsGroup.
The parent-death signal is set after the uid change (a credential change clears it), so
that the process dies with the test.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import sys

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38

_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    args = [None if value is None else value.encode() for value in (source, target, fstype, data)]
    if _libc.mount(args[0], args[1], args[2], ctypes.c_ulong(flags), args[3]) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount {source} on {target} ({fstype or 'bind'}): {os.strerror(error)}")


def _prctl(option: int, value: int) -> None:
    if _libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl({option}, {value}): {os.strerror(error)}")


def _bind(fd: int, target: str, read_only: bool) -> None:
    # The source by file descriptor: a mount made earlier (the pod's /tmp, say) may already
    # cover the path the source was opened at, the open descriptor still names it.
    _mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)
    if read_only:
        _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)


# pivot_root(2) has no libc wrapper; its number per architecture.
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
MNT_DETACH = 2


def _pivot_root(root: str) -> None:
    """Make `root` the root of this mount namespace. Not chroot: a chrooted process may not
    make user namespaces, which the env service's bwrap sandbox needs."""
    os.chdir(root)
    # pivot_root(".", "."): the old root ends up on top of the new one, and is detached.
    if _libc.syscall(_SYS_PIVOT_ROOT[os.uname().machine], b".", b".") != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"pivot_root into {root}: {os.strerror(error)}")
    if _libc.umount2(b".", MNT_DETACH) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"detaching the old root: {os.strerror(error)}")
    os.chdir("/")


def _in_root(root: str, target: str) -> str:
    """`target` resolved inside `root`: its symlinks (/var/run -> /run) read as the
    container will read them, never leading out to the host's folders."""
    parts, resolved, hops = [p for p in target.split("/") if p], "", 0
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            resolved = os.path.dirname(resolved)
            continue
        candidate = f"{resolved}/{part}"
        if os.path.islink(root + candidate):
            hops += 1
            if hops > 40:
                raise OSError(f"too many symlinks resolving {target} in {root}")
            link = os.readlink(root + candidate)
            parts[:0] = [p for p in link.split("/") if p]
            if link.startswith("/"):
                resolved = ""
            continue
        resolved = candidate
    return root + resolved


def _mount_point(root: str, target: str, is_file: bool) -> str:
    """The mount point `target` in the container's root, made in its writable layer."""
    path = _in_root(root, target)
    if is_file:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.exists(path):
            open(path, "a").close()
    else:
        os.makedirs(path, exist_ok=True)
    return path


def prepare(spec: dict) -> None:
    # Every source is opened before anything is mounted over it.
    sources = [os.open(m["source"], os.O_PATH) for m in spec["mounts"]]
    hidden = [(h["path"], [(keep, os.open(keep, os.O_PATH)) for keep in h["keep"]]) for h in spec["hide"]]
    # The container's root: the host's, as an overlay whose writable layer is the container's
    # own (mount points are made there, so the host gets none), then chroot into it.
    layer = spec["layer"]
    root = os.path.join(layer, "root")
    for name in ("root", "upper", "work"):
        os.makedirs(os.path.join(layer, name), exist_ok=True)
    _mount("overlay", root, "overlay", 0, f"lowerdir=/,upperdir={layer}/upper,workdir={layer}/work")
    for name in ("proc", "sys", "dev"):
        _mount(f"/{name}", f"{root}/{name}", None, MS_BIND | MS_REC)
    # A container's /dev/shm is its own (64 MiB, as the runtimes give it) unless a volume is mounted there.
    _mount("shm", _in_root(root, "/dev/shm"), "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777")
    for path, keep in hidden:
        # The user of the pod cannot traverse `path` (root's home, holding the interpreter):
        # an empty world-readable tmpfs over it, with only the folders the image needs.
        _mount("image", _in_root(root, path), "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
        for keep_path, fd in keep:
            _bind(fd, _mount_point(root, keep_path, False), read_only=True)
    for mount, fd in zip(spec["mounts"], sources):
        is_file = os.path.isfile(f"/proc/self/fd/{fd}")
        _bind(fd, _mount_point(root, mount["target"], is_file), mount["read_only"])
    _pivot_root(root)
    if spec["read_only_root"]:
        _mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    socket.sethostname(spec["hostname"])
    for fd in sources + [fd for _, keep in hidden for _, fd in keep]:
        os.close(fd)


def drop_privileges(spec: dict) -> None:
    if spec["drop_capabilities"]:
        last = int(open("/proc/sys/kernel/cap_last_cap").read())
        for capability in range(last + 1):
            _prctl(PR_CAPBSET_DROP, capability)
    if spec["no_new_privs"]:
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
    if spec["uid"] is not None:
        os.setgroups(spec["groups"])
        os.setgid(spec["gid"])
        os.setuid(spec["uid"])  # clears the permitted and effective capabilities too
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def main(path: str) -> None:
    with open(path) as handle:
        spec = json.load(handle)
    prepare(spec)
    drop_privileges(spec)
    os.chdir(spec["cwd"])
    argv, env = spec["argv"], spec["env"]
    # execvpe looks the program up in the container's PATH, as the runtime does.
    os.execvpe(argv[0], argv, env)


if __name__ == "__main__":
    main(sys.argv[1])

"""Where weights files are staged on one host, and the rule that the service reads only there.

A learner on the policy service's host writes each new version once, as one
safetensors file under a staging root, and sends only the file's path
(`WeightsHeader.staged_file`); the vLLM backend stages streamed tensors the
same way for its worker processes. Roots, in order of preference:

* `/dev/shm/outrider-<uid>`: shared memory (RAM-backed), so writing and
  reading a version costs memory bandwidth, not disk;
* `<cache>/weights-staging` (`$OUTRIDER_CACHE`, default `~/.cache/outrider`):
  disk, when /dev/shm is missing or has no room (containers often give it 64 MiB).

Roots are per user and private (mode 0700, owned by this uid): a root that
another user created or that is a symlink is not used, so nobody else can
swap a file between the write and the load.

The service accepts a staged file only under these roots, with symlinks and
`..` resolved first: a path in an RPC must not make it read arbitrary files
of its host. `checkpoint_path` keeps its own rule (any HF folder the service
can read: shared storage is wherever an operator mounts it).

Both sides use this module: the learner's weight sync (`outrider.learner.staged_weights`)
writes here, the policy service (its servicer and vLLM backend) reads and checks here; it
sits below both (docs/architecture.md, Layers).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import stat
from pathlib import Path

from outrider.models.cache import cache_root
from outrider.process import pid_alive
from outrider.serving import InvalidArgument, NotFound, PermissionDenied

log = logging.getLogger(__name__)

SHM = Path("/dev/shm")
# Room left free in a root beyond the file itself (other users of /dev/shm, a second version).
HEADROOM_BYTES = 64 * 1024 * 1024


def shm_root() -> Path:
    return SHM / f"outrider-{os.getuid()}"


def disk_root() -> Path:
    return cache_root() / "weights-staging"


def staging_roots() -> tuple[Path, ...]:
    """Every root a staged file may live under, preferred first."""
    return (shm_root(), disk_root())


def _private_dir(root: Path) -> bool:
    """Create `root` (mode 0700) if needed; true if it is a real folder owned by this user."""
    try:
        root.mkdir(mode=0o700, parents=root != shm_root(), exist_ok=True)
        info = root.lstat()
    except OSError as exc:
        log.debug("weights staging root %s unusable: %s", root, exc)
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        log.warning("weights staging root %s is not a folder owned by uid %d: not used", root, os.getuid())
        return False
    return True


def staging_root(needed_bytes: int) -> Path:
    """The first root that is private and has room for `needed_bytes` (+ headroom)."""
    for root in staging_roots():
        if root == shm_root() and not SHM.is_dir():
            continue
        if _private_dir(root) and shutil.disk_usage(root).free >= needed_bytes + HEADROOM_BYTES:
            return root
    raise OSError(
        f"no weights staging root has {needed_bytes / 2**20:.0f} MiB free (+ {HEADROOM_BYTES // 2**20} MiB headroom): "
        f"tried {', '.join(str(r) for r in staging_roots())}"
    )


def owned_name(kind: str) -> str:
    """`<kind>+<host>+<pid>`: a staging entry named after the process that owns it
    (`+` cannot occur in a host name), so a later process can tell when it is orphaned."""
    return f"{kind}+{socket.gethostname()}+{os.getpid()}"


def remove_orphans(root: Path) -> list[Path]:
    """Remove the entries under `root` whose owner, a process on this host, is gone
    (killed before it could clean up); returns what was removed."""
    host = socket.gethostname()
    removed = []
    for entry in root.iterdir():
        parts = entry.name.split("+")
        if len(parts) < 3 or parts[1] != host or not parts[2].split(".")[0].isdigit():
            continue
        if pid_alive(int(parts[2].split(".")[0])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    if removed:
        log.info("removed %d orphaned weights staging entries under %s", len(removed), root)
    return removed


def check_staged_file(path_text: str, roots: tuple[Path, ...] | None = None) -> Path:
    """The resolved path of `WeightsHeader.staged_file`, or the status that says why not.

    PERMISSION_DENIED outside the staging roots, INVALID_ARGUMENT for a relative
    path or a file that is not `*.safetensors`, NOT_FOUND when it does not exist.
    """
    where = "header.staged_file"
    if not path_text:
        raise InvalidArgument(f"{where}: empty path")
    path = Path(path_text)
    if not path.is_absolute():
        raise InvalidArgument(f"{where}: {path_text} is not an absolute path")
    resolved = path.resolve()
    allowed = [root.resolve() for root in (roots or staging_roots())]
    if not any(resolved.is_relative_to(root) for root in allowed):
        raise PermissionDenied(
            f"{where}: {path_text} is outside the weights staging roots ({', '.join(str(r) for r in allowed)}); "
            "send other weights as checkpoint_path or streamed tensors"
        )
    if resolved.suffix != ".safetensors":
        raise InvalidArgument(f"{where}: {path_text} is not a .safetensors file")
    if not resolved.is_file():
        raise NotFound(f"{where}: {path_text} does not exist on the policy service's host")
    return resolved

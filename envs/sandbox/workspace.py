"""Per-run workspaces and per-run host identities.

Every run gets a private folder `<workspace_root>/run-<random>/` (mode 0700)
with `work/` inside (the program's writable working directory) and room for
backend files (gVisor's bundle and state). It is removed when the run ends.

As root, every concurrent run also gets its own host uid: RLIMIT_NPROC counts
processes per uid, so a shared uid would let one fork bomb starve another run
(and root ignores RLIMIT_NPROC altogether). Uids are leased with `flock` on
`<workspace_root>/uids/<uid>.lock`, which also works across processes (the env
and reward services may share a host), and the lease ends with the run.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from outrider.envs.sandbox.base import SandboxError, SandboxOptions

UID_POOL_SIZE = 65536
_next_slot = 0
_slot_lock = threading.Lock()


@dataclass(frozen=True)
class Identity:
    """A host uid/gid leased for one run."""

    uid: int
    gid: int
    lock_fd: int


def lease_identity(options: SandboxOptions) -> Identity:
    """Lease a uid no other run (in any process using this workspace root) holds now."""
    global _next_slot
    lock_dir = options.workspace_root / "uids"
    lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _slot_lock:
        start = _next_slot
        _next_slot = (_next_slot + 1) % UID_POOL_SIZE
    for step in range(UID_POOL_SIZE):
        uid = options.uid_base + (start + step) % UID_POOL_SIZE
        fd = os.open(lock_dir / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return Identity(uid, uid, fd)
    raise SandboxError(f"all {UID_POOL_SIZE} sandbox uids from {options.uid_base} are in use")


def release_identity(identity: Identity) -> None:
    os.close(identity.lock_fd)  # closing drops the flock


class Workspace:
    """A fresh private folder (and, as root, a leased uid) for one run."""

    def __init__(self, options: SandboxOptions, with_identity: bool):
        self.options = options
        self.with_identity = with_identity
        self.identity: Identity | None = None
        self.root: Path | None = None

    @property
    def path(self) -> Path:
        """The program's working directory on the host."""
        return self.root / "work"

    def __enter__(self) -> Workspace:
        base = self.options.workspace_root
        base.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.root = base / f"run-{uuid.uuid4().hex}"
        self.root.mkdir(mode=0o711)
        self.path.mkdir(mode=0o700)
        if self.with_identity:
            self.identity = lease_identity(self.options)
            os.chown(self.path, self.identity.uid, self.identity.gid)
        return self

    def write(self, files: dict[str, bytes]) -> None:
        """Put the program's files into the working directory, owned by the run's uid."""
        for name, content in files.items():
            target = self.path / name
            for parent in reversed(target.relative_to(self.path).parents[:-1]):
                folder = self.path / parent
                if not folder.exists():
                    folder.mkdir(mode=0o700)
                    self._own(folder)
            target.write_bytes(content)
            self._own(target)

    def _own(self, path: Path) -> None:
        if self.identity is not None:
            os.chown(path, self.identity.uid, self.identity.gid)

    def __exit__(self, *exc) -> None:
        try:
            if self.root is not None:
                _remove_tree(self.root)
        finally:
            if self.identity is not None:
                release_identity(self.identity)


def _remove_tree(root: Path) -> None:
    def make_writable_and_retry(function, path, _exc):
        # A program may leave folders without write or search permission.
        parent = os.path.dirname(path)
        os.chmod(parent, 0o700)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)
        function(path)

    shutil.rmtree(root, onerror=make_writable_and_retry)
    if root.exists():
        raise SandboxError(f"could not remove the workspace {root}")

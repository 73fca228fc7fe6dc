"""The model cache: where materialized models live and how they get there safely.

Several processes (parallel tests, the services of a local stack) may ask for
the same model at once. A folder is built under a file lock in a private
temporary folder next to its final place and published with one atomic
`rename`, so a reader sees either no folder or a complete one, never half.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

# Written last into every finished folder; its presence marks the folder complete.
COMPLETE_MARKER = ".outrider-complete"


def cache_root() -> Path:
    """`$OUTRIDER_CACHE` if set, else `~/.cache/outrider`."""
    env = os.environ.get("OUTRIDER_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "outrider"


def models_dir() -> Path:
    return cache_root() / "models"


def is_complete(folder: Path) -> bool:
    return (folder / COMPLETE_MARKER).is_file()


def build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """Return `target`, building it with `build(tmp_folder)` if it is not there yet.

    Process-safe: one process builds while the others wait on the lock, then
    find the finished folder. A crashed builder leaves only a stale temporary
    folder (removed by the next builder), never a partial `target`.
    """
    if is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f".{target.name}.lock"
    with open(lock_path, "w") as lock_file:
        started = time.monotonic()
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        waited = time.monotonic() - started
        if waited > 1:
            log.info("waited %.1f s for another process building %s", waited, target)
        if is_complete(target):
            return target
        if target.exists():  # left by a version of this code that had no marker
            shutil.rmtree(target)
        for stale in target.parent.glob(f".{target.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            build(tmp)
            (tmp / COMPLETE_MARKER).write_text("")
            tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared by services
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target

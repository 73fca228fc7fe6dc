"""The staging-root rule: a staged file is read only from inside the roots, symlinks and `..`
resolved first; orphaned entries of dead processes are removed, live ones kept."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from outrider.serving import InvalidArgument, NotFound, PermissionDenied
from outrider.models import staging
from outrider.models.staging import check_staged_file, owned_name, remove_orphans


@pytest.fixture
def root(tmp_path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    return folder


def test_a_file_inside_the_root_is_accepted_resolved(root):
    (root / "sub").mkdir()
    (root / "sub" / "v1.safetensors").write_bytes(b"x")
    assert check_staged_file(str(root / "sub" / ".." / "sub" / "v1.safetensors"), (root,)) == (root / "sub" / "v1.safetensors").resolve()


@pytest.mark.parametrize("how", ["outside", "dotdot", "symlink"])
def test_paths_that_end_outside_the_root_are_permission_denied_naming_the_path(root, tmp_path, how):
    outside = tmp_path / "elsewhere.safetensors"
    outside.write_bytes(b"x")
    if how == "outside":
        given = str(outside)
    elif how == "dotdot":
        given = str(root / ".." / "elsewhere.safetensors")
    else:
        (root / "link.safetensors").symlink_to(outside)
        given = str(root / "link.safetensors")
    with pytest.raises(PermissionDenied) as failure:
        check_staged_file(given, (root,))
    assert given in failure.value.message and "staging roots" in failure.value.message


def test_malformed_or_missing_staged_files_name_the_problem(root):
    with pytest.raises(InvalidArgument, match="empty path"):
        check_staged_file("", (root,))
    with pytest.raises(InvalidArgument, match="not an absolute path"):
        check_staged_file("v1.safetensors", (root,))
    (root / "v1.bin").write_bytes(b"x")
    with pytest.raises(InvalidArgument, match="not a .safetensors file"):
        check_staged_file(str(root / "v1.bin"), (root,))
    with pytest.raises(NotFound, match="v2.safetensors does not exist"):
        check_staged_file(str(root / "v2.safetensors"), (root,))


def test_orphans_of_dead_processes_on_this_host_are_removed_and_nothing_else(root):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    host = socket.gethostname()
    (root / f"learner+{host}+{dead_pid}").mkdir()
    (root / f"learner+{host}+{dead_pid}" / "v0000001.safetensors").write_bytes(b"x")
    (root / f"streamed+{host}+{dead_pid}+{'0' * 32}.safetensors").write_bytes(b"x")
    mine = root / owned_name("learner")
    mine.mkdir()
    other_host = root / f"learner+another-host+{dead_pid}"
    other_host.mkdir()
    unrelated = root / "notes.txt"
    unrelated.write_text("x")
    removed = remove_orphans(root)
    assert sorted(p.name for p in removed) == sorted(
        [f"learner+{host}+{dead_pid}", f"streamed+{host}+{dead_pid}+{'0' * 32}.safetensors"]
    )
    assert sorted(p.name for p in root.iterdir()) == sorted([mine.name, other_host.name, unrelated.name])
    assert mine.name == f"learner+{host}+{os.getpid()}"


def test_the_disk_root_is_used_when_shared_memory_has_no_room(tmp_path, monkeypatch):
    monkeypatch.setattr(staging, "SHM", tmp_path / "shm")
    monkeypatch.setenv("OUTRIDER_CACHE", str(tmp_path / "cache"))
    (tmp_path / "shm").mkdir()
    free = {"shm": 10 * 2**30}
    real_usage = staging.shutil.disk_usage

    def usage(path):
        total, used, left = real_usage(path)
        return type(real_usage(path))(total, used, free["shm"] if "shm" in str(path) else left)

    monkeypatch.setattr(staging.shutil, "disk_usage", usage)
    assert staging.staging_root(1024) == tmp_path / "shm" / f"outrider-{os.getuid()}"
    free["shm"] = 1024
    assert staging.staging_root(1024) == tmp_path / "cache" / "weights-staging"
    assert (tmp_path / "cache" / "weights-staging").stat().st_mode & 0o777 == 0o700


def test_a_root_owned_by_someone_else_or_a_symlink_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setattr(staging, "SHM", tmp_path / "shm")
    monkeypatch.setenv("OUTRIDER_CACHE", str(tmp_path / "cache"))
    (tmp_path / "shm").mkdir()
    (tmp_path / "planted").mkdir()
    (tmp_path / "shm" / f"outrider-{os.getuid()}").symlink_to(tmp_path / "planted")
    assert staging.staging_root(1024) == tmp_path / "cache" / "weights-staging"

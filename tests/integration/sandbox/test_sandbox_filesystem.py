"""Containment suite (filesystem): hostile programs against the real bwrap and gVisor backends.

Every case asserts that the host is unaffected (a file does not exist, a server
saw no connection, a host process is alive, nothing of the run is left), not
only that the program saw an error. Shared limits and probes: testkit/containment.py.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import time
from pathlib import Path

import pytest

from outrider.envs.sandbox import LimitHit
from testkit.containment import TEST_LIMITS, assert_nothing_left, host_pids_mentioning, run_json

pytestmark = pytest.mark.sandbox


def test_writes_outside_the_workspace_do_not_reach_the_host(sandbox, marker):
    targets = [
        f"/tmp/{marker}",
        f"/usr/{marker}",
        f"/usr/lib/{marker}",
        f"/etc/{marker}",
        f"/root/{marker}",
        f"/{marker}",
        f"{sandbox.options.workspace_root}/{marker}",
    ]
    code = """
import json, os, sys
outcome = {}
for path in sys.argv[1:]:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("pwned")
        outcome[path] = "written"
    except OSError as exc:
        outcome[path] = f"error {exc.errno}"
print(json.dumps(outcome))
"""
    _, outcome = run_json(sandbox, code, *targets)
    for path in targets:
        assert not Path(path).exists(), f"{path} appeared on the host (inside: {outcome[path]})"
    # /usr is mounted read-only: the write fails inside too.
    assert outcome[f"/usr/lib/{marker}"].startswith("error")
    assert_nothing_left(sandbox)


def test_system_folders_are_read_only(sandbox):
    code = """
import json, os
outcome = {}
for path in ["/usr/bin/python3", "/usr/lib/os-release", "/bin/sh"]:
    try:
        with open(path, "ab"):
            pass
        outcome[path] = "opened for writing"
    except OSError as exc:
        outcome[path] = f"error {exc.errno}"
try:
    os.chmod("/usr/bin", 0o777); outcome["chmod"] = "changed"
except OSError as exc:
    outcome["chmod"] = f"error {exc.errno}"
print(json.dumps(outcome))
"""
    before = {path: os.stat(path).st_mtime_ns for path in ["/usr/bin/python3", "/usr/bin"]}
    _, outcome = run_json(sandbox, code)
    assert all(value.startswith("error") for value in outcome.values()), outcome
    assert {path: os.stat(path).st_mtime_ns for path in before} == before
    assert oct(os.stat("/usr/bin").st_mode & 0o777) == "0o755"


def test_host_secrets_files_are_not_readable(sandbox):
    shadow = Path("/etc/shadow").read_text() if Path("/etc/shadow").exists() else ""
    code = """
import json
outcome = {}
for path in ["/etc/shadow", "/etc/passwd", "/etc/hostname", "/proc/1/root/etc/shadow"]:
    try:
        outcome[path] = open(path).read()
    except OSError as exc:
        outcome[path] = f"error {exc.errno}"
print(json.dumps(outcome))
"""
    _, outcome = run_json(sandbox, code)
    assert all(value.startswith("error") for value in outcome.values()), outcome
    if shadow:
        assert shadow.splitlines()[0] not in json.dumps(outcome)


def test_host_home_is_not_visible(sandbox, marker):
    secret_file = Path.home() / f".{marker}"
    secret_file.write_text(marker)
    code = """
import json, os, sys
outcome = {"home": os.environ.get("HOME")}
for path in [sys.argv[1], "/root", "/home"]:
    try:
        outcome[path] = open(path).read() if path == sys.argv[1] else os.listdir(path)
    except OSError as exc:
        outcome[path] = f"error {exc.errno}"
print(json.dumps(outcome))
"""
    try:
        result, outcome = run_json(sandbox, code, str(secret_file))
    finally:
        secret_file.unlink()
    assert marker not in result.stdout.replace(str(secret_file), "")
    assert outcome["home"] == "/work"
    assert all(str(outcome[path]).startswith("error") for path in ["/root", "/home"]), outcome


def test_other_runs_workspaces_are_not_visible(sandbox, marker):
    """Run A keeps a secret in its workspace; run B, at the same time, looks everywhere
    (and at the host path of A's workspace, where one exists)."""
    holder = """
import sys, time
open("secret.txt", "w").write(sys.argv[1])
time.sleep(2.5)
print("{}")
"""
    seeker = """
import json, os, sys
found = []
for top in ["/", "/tmp", "/work"]:
    for folder, dirs, files in os.walk(top):
        if folder.startswith(("/proc", "/usr", "/sys", "/dev")):
            dirs[:] = []
            continue
        for name in files:
            try:
                if sys.argv[1] in open(os.path.join(folder, name), errors="replace").read():
                    found.append(os.path.join(folder, name))
            except OSError:
                pass
for host_path in sys.argv[2:]:
    try:
        found.append(open(host_path).read())
    except OSError:
        pass
print(json.dumps(found))
"""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first = pool.submit(sandbox.run, holder, TEST_LIMITS, command=["python3", "main.py", marker])
        host_copies = _wait_until_holding(sandbox, marker)
        if sandbox.name == "bwrap":
            assert host_copies == []  # bwrap workspaces live only inside the sandbox
        _, found = run_json(sandbox, seeker, marker, *map(str, host_copies))
        assert first.result().exit_code == 0
    assert found == []


def _wait_until_holding(sandbox, marker: str) -> list[Path]:
    """Wait until the holder run has written its secret; return host files that contain it."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        copies = [p for p in sandbox.options.workspace_root.glob("run-*/work/*") if p.is_file() and marker in p.read_text()]
        if copies:
            return copies
        if host_pids_mentioning(marker):  # bwrap: the run is up; give it time to write
            time.sleep(0.5)
            return []
        time.sleep(0.02)
    raise AssertionError("the holder run never started")


def test_bwrap_workspace_is_in_memory_and_size_capped(sandbox_options):
    """bwrap's /work is a tmpfs of workspace_bytes inside the sandbox: filling it stops
    at the cap and nothing reaches the host's disk."""
    from outrider.envs.sandbox import backend_class

    if backend_class("bwrap").unavailable_reason(sandbox_options) is not None:
        pytest.skip("bwrap unavailable")
    sandbox = backend_class("bwrap")(sandbox_options)
    code = """
import json
n = 0
try:
    for i in range(4096):
        with open(f"fill{i}", "wb") as f:
            f.write(b"x" * (512 * 1024))
        n += 1
except OSError as exc:
    print(json.dumps({"files": n, "errno": exc.errno}))
"""
    result, outcome = run_json(sandbox, code)
    assert outcome["errno"] == 28  # ENOSPC at 64 MiB, long before 2 GiB
    assert outcome["files"] * 512 * 1024 <= sandbox_options.workspace_bytes
    assert_nothing_left(sandbox)


def test_workspace_is_fresh_for_every_run(sandbox, marker):
    first = sandbox.run(f"open('left-behind.txt', 'w').write('{marker}'); print('ok')", TEST_LIMITS)
    assert first.stdout == "ok\n"
    _, listing = run_json(sandbox, "import json, os; print(json.dumps(sorted(os.listdir('.'))))")
    assert listing == ["main.py"]
    assert_nothing_left(sandbox)


def test_huge_file_is_stopped_at_the_file_size_limit(sandbox):
    code = """
import json
written = 0
try:
    with open("huge.bin", "wb") as f:
        for _ in range(64):
            f.write(b"x" * (1 << 20)); f.flush(); written += 1 << 20
except OSError as exc:
    print(json.dumps({"written": written, "errno": exc.errno}))
    raise
"""
    result = sandbox.run(code, TEST_LIMITS)
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert result.limit_hit is LimitHit.FILE_SIZE
    assert outcome["errno"] == 27  # EFBIG
    # The limit is 1 MiB; the first 1 MiB write fits, the second fails.
    assert outcome["written"] == TEST_LIMITS.max_file_bytes
    assert_nothing_left(sandbox)


def test_tmp_is_private_and_size_capped(sandbox, marker):
    code = """
import json, os
n = 0
try:
    for i in range(4096):
        with open(f"/tmp/fill{i}", "wb") as f:
            f.write(b"x" * (512 * 1024))
        n += 1
except OSError as exc:
    print(json.dumps({"files": n, "errno": exc.errno}))
"""
    host_tmp_before = set(os.listdir("/tmp"))
    result, outcome = run_json(sandbox, code)
    assert outcome["errno"] == 28  # ENOSPC: /tmp is capped at tmp_bytes (64 MiB), far below 2 GiB
    assert outcome["files"] * 512 * 1024 <= sandbox.options.tmp_bytes
    assert not any(name.startswith("fill") for name in set(os.listdir("/tmp")) - host_tmp_before)
    assert result.exit_code == 0

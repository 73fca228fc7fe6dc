"""Containment suite: hostile programs against the real bwrap and gVisor backends.

Every case asserts that the host is unaffected (a file does not exist, a server
saw no connection, a host process is alive, nothing of the run is left), not
only that the program saw an error.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import socket
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from outrider.envs.sandbox import LimitHit, Limits

pytestmark = pytest.mark.sandbox

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


# --- network ------------------------------------------------------------------


def test_network_egress_to_external_addresses_fails(sandbox):
    code = """
import json, socket
outcome = {}
for host, port in [("1.1.1.1", 53), ("8.8.8.8", 443), ("93.184.216.34", 80)]:
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect((host, port)); outcome[host] = "connected"
    except OSError as exc:
        outcome[host] = f"error {exc.errno}"
try:
    socket.getaddrinfo("pypi.org", 443); outcome["dns"] = "resolved"
except OSError as exc:
    outcome["dns"] = "error"
print(json.dumps(outcome))
"""
    result, outcome = run_json(sandbox, code)
    assert result.exit_code == 0
    assert all(value.startswith("error") for value in outcome.values()), outcome
    assert_nothing_left(sandbox)


def test_network_service_on_host_loopback_unreachable(sandbox, loopback_server):
    code = """
import json, socket, sys
s = socket.socket(); s.settimeout(2)
try:
    s.connect(("127.0.0.1", int(sys.argv[1]))); print(json.dumps("connected"))
except OSError as exc:
    print(json.dumps(f"error {exc.errno}"))
"""
    _, outcome = run_json(sandbox, code, str(loopback_server.port))
    time.sleep(0.3)  # let the server's accept loop see a connection, had there been one
    assert outcome.startswith("error")
    assert loopback_server.accepted == 0


def test_network_host_address_unreachable(sandbox, any_interface_server):
    host_ip = _non_loopback_address()
    if host_ip is None:
        pytest.skip("this host has no non-loopback IPv4 address")
    code = """
import json, socket, sys
s = socket.socket(); s.settimeout(2)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); print(json.dumps("connected"))
except OSError as exc:
    print(json.dumps(f"error {exc.errno}"))
"""
    _, outcome = run_json(sandbox, code, host_ip, str(any_interface_server.port))
    time.sleep(0.3)
    assert outcome.startswith("error")
    assert any_interface_server.accepted == 0


def _non_loopback_address() -> str | None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))  # no packet is sent: only picks a route
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


def test_host_unix_sockets_unreachable(sandbox, marker, tmp_path):
    """Neither a socket file in the host's /tmp nor an abstract socket of the host's network namespace."""
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind(f"\0{marker}")
    abstract.listen()
    path = Path("/tmp") / f"{marker}.sock"
    named = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    named.bind(str(path))
    named.listen()
    abstract.setblocking(False)
    named.setblocking(False)
    code = """
import json, socket, sys
outcome = {}
for name, address in [("abstract", "\\0" + sys.argv[1]), ("file", "/tmp/" + sys.argv[1] + ".sock")]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(address); outcome[name] = "connected"
    except OSError as exc:
        outcome[name] = f"error {exc.errno}"
print(json.dumps(outcome))
"""
    try:
        _, outcome = run_json(sandbox, code, marker)
        for server in (abstract, named):
            with pytest.raises(BlockingIOError):
                server.accept()
    finally:
        abstract.close()
        named.close()
        path.unlink()
    assert all(value.startswith("error") for value in outcome.values()), outcome


# --- filesystem ----------------------------------------------------------------


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


# --- environment and processes -------------------------------------------------


def test_environment_secrets_are_not_visible(sandbox, monkeypatch):
    secret = f"token-{uuid.uuid4().hex}"
    monkeypatch.setenv("OUTRIDER_TEST_API_KEY", secret)
    code = """
import json, os
seen = dict(os.environ)
for path in ["/proc/self/environ", "/proc/1/environ"]:
    try:
        seen[path] = open(path, "rb").read().decode(errors="replace")
    except OSError as exc:
        seen[path] = f"error {exc.errno}"
print(json.dumps(seen))
"""
    result, seen = run_json(sandbox, code)
    assert secret not in result.stdout
    assert "OUTRIDER_TEST_API_KEY" not in seen
    assert seen["HOME"] == "/work"


def test_proc_shows_no_host_processes(sandbox, sentinel, marker):
    code = """
import json, os, sys
pids = [p for p in os.listdir("/proc") if p.isdigit()]
leaks = []
for pid in pids:
    for item in ("cmdline", "environ"):
        try:
            data = open(f"/proc/{pid}/{item}", "rb").read().decode(errors="replace")
        except OSError:
            continue
        if sys.argv[1][::-1] in data or sys.argv[2][::-1] in data:
            leaks.append(pid)
print(json.dumps({"pids": len(pids), "leaks": leaks}))
"""
    # Passed reversed: the program's own argv must not contain what it looks for.
    _, outcome = run_json(sandbox, code, marker[::-1], sentinel.secret[::-1])
    assert outcome["leaks"] == []
    assert outcome["pids"] <= 3  # the program (and bwrap's init): no host processes
    assert sentinel.poll() is None


def test_fork_bomb_is_contained(sandbox, marker):
    code = """
import os, sys, time
end = time.time() + 2
while time.time() < end:
    try:
        os.fork()
    except OSError:
        time.sleep(0.01)
"""
    result = sandbox.run(code, TEST_LIMITS, command=["python3", "main.py", marker])
    # bwrap: forks fail at RLIMIT_NPROC until the 2 s loop ends (NONE) or wall time;
    # gVisor: its CPU watch counts the whole sandbox, so the spinning copies hit CPU_TIME.
    assert result.limit_hit in (LimitHit.PROCESSES, LimitHit.WALL_TIME, LimitHit.NONE, LimitHit.CPU_TIME)
    # Every forked copy is gone with the run, and the host can still start processes.
    assert_nothing_left(sandbox, marker)
    assert os.system("true") == 0


def test_fork_bomb_in_one_run_does_not_starve_another(sandbox, marker):
    bomb = """
import os, time
end = time.time() + 3
while time.time() < end:
    try:
        os.fork()
    except OSError:
        time.sleep(0.01)
"""
    worker = """
import json, os
pids = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    pids.append(pid)
print(json.dumps([os.waitpid(pid, 0)[1] for pid in pids]))
"""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        bombing = pool.submit(sandbox.run, bomb, TEST_LIMITS, command=["python3", "main.py", marker])
        time.sleep(1.0)
        _, statuses = run_json(sandbox, worker)
        bombing.result()
    assert statuses == [0, 0, 0, 0]
    assert_nothing_left(sandbox, marker)


def test_memory_bomb_is_stopped(sandbox):
    code = """
blocks = []
while True:
    blocks.append(bytearray(32 * 1024 * 1024))
"""
    result = sandbox.run(code, TEST_LIMITS)
    assert result.limit_hit is LimitHit.MEMORY
    assert "MemoryError" in result.stderr
    assert result.duration_s < TEST_LIMITS.wall_time_s
    assert_nothing_left(sandbox)


def test_cpu_spin_is_stopped_at_the_cpu_limit(sandbox):
    limits = replace(TEST_LIMITS, wall_time_s=20.0, cpu_time_s=1.0)
    result = sandbox.run("while True:\n    pass\n", limits)
    assert result.limit_hit is LimitHit.CPU_TIME
    assert result.exit_code < 0  # killed by a signal (SIGXCPU or SIGKILL)
    assert result.duration_s < limits.wall_time_s
    assert_nothing_left(sandbox)


def test_sleep_past_wall_time_is_killed(sandbox, marker):
    limits = replace(TEST_LIMITS, wall_time_s=1.5)
    result = sandbox.run("import time\ntime.sleep(60)\n", limits, command=["python3", "main.py", marker])
    assert result.limit_hit is LimitHit.WALL_TIME
    assert result.exit_code == -signal.SIGKILL
    assert limits.wall_time_s <= result.duration_s < limits.wall_time_s + 2.0
    assert_nothing_left(sandbox, marker)


def test_huge_stdout_is_capped_and_stopped(sandbox):
    result = sandbox.run("import sys\nwhile True:\n    sys.stdout.write('y' * 65536)\n", TEST_LIMITS)
    assert result.limit_hit is LimitHit.OUTPUT
    assert result.stdout_truncated
    assert len(result.stdout) == TEST_LIMITS.max_output_bytes
    assert set(result.stdout) == {"y"}
    assert_nothing_left(sandbox)


def test_huge_stderr_is_capped_and_stopped(sandbox):
    result = sandbox.run("import sys\nwhile True:\n    sys.stderr.write('e' * 65536)\n", TEST_LIMITS)
    assert result.limit_hit is LimitHit.OUTPUT
    assert result.stderr_truncated and not result.stdout_truncated
    assert len(result.stderr) == TEST_LIMITS.max_output_bytes
    assert_nothing_left(sandbox)


def test_background_process_does_not_outlive_the_run(sandbox, marker):
    code = """
import os, subprocess, sys
# A detached child and a double-forked daemon, both meant to live on.
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", sys.argv[1]], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(120)", sys.argv[1]])
    os._exit(0)
print("{}")
"""
    result = sandbox.run(code, TEST_LIMITS, command=["python3", "main.py", marker])
    assert result.exit_code == 0
    assert result.duration_s < TEST_LIMITS.wall_time_s
    time.sleep(0.2)
    assert_nothing_left(sandbox, marker)


def test_signalling_parent_and_host_processes_has_no_effect(sandbox, sentinel):
    code = """
import json, os, signal, sys
outcome = {}
for name, pid in [("parent", os.getppid()), ("init", 1), ("sentinel", int(sys.argv[1]))]:
    try:
        os.kill(pid, signal.SIGKILL); outcome[name] = "sent"
    except OSError as exc:
        outcome[name] = f"error {exc.errno}"
try:
    os.kill(-1, signal.SIGKILL)  # every process this user may signal (the program itself included)
except OSError:
    pass
print(json.dumps(outcome))
"""
    test_process_alive_before = os.getpid()
    result = sandbox.run(code, TEST_LIMITS, command=["python3", "main.py", str(sentinel.pid)])
    assert sentinel.poll() is None, "the host sentinel process was killed"
    assert os.getpid() == test_process_alive_before
    assert result.limit_hit is LimitHit.NONE
    assert_nothing_left(sandbox)


def test_program_runs_unprivileged(sandbox):
    code = """
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
outcome = {"uid": os.getuid(), "cap_eff": status["CapEff"].strip()}
outcome["mount"] = libc.mount(b"none", b"/work", b"tmpfs", 0, None)
outcome["chroot"] = libc.chroot(b"/tmp")
try:
    os.setuid(0); outcome["setuid"] = "ok"
except OSError as exc:
    outcome["setuid"] = f"error {exc.errno}"
print(json.dumps(outcome))
"""
    _, outcome = run_json(sandbox, code)
    assert outcome["uid"] != 0
    assert int(outcome["cap_eff"], 16) == 0
    assert outcome["mount"] == -1 and outcome["chroot"] == -1
    assert outcome["setuid"].startswith("error")


def test_no_host_devices(sandbox):
    code = """
import json, os
outcome = {"dev": sorted(os.listdir("/dev"))}
for path in ["/dev/mem", "/dev/kmsg", "/dev/sda", "/dev/vda", "/dev/nvme0n1"]:
    try:
        open(path, "rb").read(1); outcome[path] = "read"
    except OSError as exc:
        outcome[path] = f"error {exc.errno}"
print(json.dumps(outcome))
"""
    _, outcome = run_json(sandbox, code)
    for path in ["/dev/mem", "/dev/kmsg", "/dev/sda", "/dev/vda", "/dev/nvme0n1"]:
        assert outcome[path].startswith("error"), outcome
    assert not {"sda", "vda", "mem", "kmsg"} & set(outcome["dev"])


def test_hostname_change_stays_inside(sandbox):
    host_name = socket.gethostname()
    code = """
import json, socket
try:
    socket.sethostname("pwned"); outcome = "changed"
except OSError as exc:
    outcome = f"error {exc.errno}"
print(json.dumps({"outcome": outcome, "name": socket.gethostname()}))
"""
    _, outcome = run_json(sandbox, code)
    assert outcome["name"] == "sandbox"
    assert socket.gethostname() == host_name


def test_concurrent_runs_all_finish_and_leave_nothing(sandbox, marker):
    code = "import sys, time\ntime.sleep(0.3)\nprint(sys.argv[1])\n"
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(sandbox.run, code, TEST_LIMITS, command=["python3", "main.py", f"{marker}-{i}"]) for i in range(4)]
        results = [future.result() for future in futures]
    assert [result.stdout for result in results] == [f"{marker}-{i}\n" for i in range(4)]
    assert_nothing_left(sandbox, marker)

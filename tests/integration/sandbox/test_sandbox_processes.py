"""Containment suite (environment and processes): hostile programs against the real bwrap and gVisor backends.

Every case asserts that the host is unaffected (a file does not exist, a server
saw no connection, a host process is alive, nothing of the run is left), not
only that the program saw an error. Shared limits and probes: testkit/containment.py.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import time
import uuid
from dataclasses import replace

import pytest

from outrider.envs.sandbox import LimitHit
from testkit.containment import TEST_LIMITS, assert_nothing_left, run_json

pytestmark = pytest.mark.sandbox


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

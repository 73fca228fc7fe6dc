"""`dying_with_this_process`: a supervised child gets its signal when the supervisor dies,
without a preexec_fn (which runs Python in the forked child: unsafe next to gRPC); and
`free_port`, which the supervisors use for their children's addresses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from outrider.process import free_port

SUPERVISOR = """
import subprocess, sys, time
from outrider.process import dying_with_this_process
child = subprocess.Popen(dying_with_this_process([sys.executable, "-c", "import time; time.sleep(120)"]))
print(child.pid, flush=True)
time.sleep(120)
"""


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def test_the_child_becomes_its_command_and_dies_when_the_supervisor_is_killed():
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR], stdout=subprocess.PIPE, text=True)
    try:
        child = int(supervisor.stdout.readline())
        deadline = time.monotonic() + 30
        # The launcher execs into the command: the child's command line is the command's.
        while b"time.sleep(120)" not in Path(f"/proc/{child}/cmdline").read_bytes():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        supervisor.kill()
        supervisor.wait(timeout=10)
        while _state(child) not in (None, "Z"):
            assert time.monotonic() < deadline, "the child outlived its supervisor"
            time.sleep(0.05)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()


def test_a_child_whose_supervisor_is_already_gone_does_not_start(tmp_path):
    from outrider.process import dying_with_this_process

    argv = dying_with_this_process([sys.executable, "-c", "open('started', 'w')"])
    argv[4] = str(os.getpid() + 1_000_000)  # a parent pid that is not its parent
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "the supervisor ended before this process started" in done.stderr
    assert not (tmp_path / "started").exists()


def test_free_port_is_below_the_ephemeral_range_and_bindable():
    # Ports the kernel hands out as source ports of outgoing connections are not offered.
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert all(1024 <= port < low for port in ports), sorted(ports)
    assert len(ports) > 1  # drawn at random, not a fixed sequence two processes would share
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports.pop()))

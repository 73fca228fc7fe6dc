"""SIGKILL of the policy service leaves no vLLM process behind.

`outrider serve policy` on vLLM-CPU (tiny-random) as a process: once it serves, every process
below it (EngineCore, its workers, multiprocessing's resource tracker) is recorded from /proc
with its start time; then the service is SIGKILLed — no chance to shut anything down — and
each recorded process must be gone (or a zombie) within a bounded wait. Without
PR_SET_PDEATHSIG on the engine they stayed under init, holding the model and the KV cache."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testkit.e2e import descendants

CONFIG = """\
kind: policy
model: tiny-random
backend: vllm
dtype: float32
limits: {max_context: 512}
vllm: {cpu_kv_cache_gib: 1}
server: {port: 0, metrics_port: null, grace_s: 2}
http_port: null
"""
GONE_WITHIN_S = 60.0


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks): a pid reused later has another."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def running(pid: int, started: str) -> bool:
    """The same process is still there and not a zombie."""
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and fields[19] == started


def title(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def wait_ready(process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for line in process.stdout:
        if line.startswith("OUTRIDER_READY"):
            return
        assert time.monotonic() < deadline, "no READY line in time"
    raise AssertionError(f"the service exited with {process.wait()} before READY")


HELPER = """\
import multiprocessing, multiprocessing.spawn, os, sys, time
from outrider.process import children_die_with_this_process

if __name__ == "__main__":
    with children_die_with_this_process():
        spawned = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(120,))
        spawned.start()
        forked = multiprocessing.get_context("fork").Process(target=time.sleep, args=(120,))
        forked.start()
    after = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(120,))
    after.start()
    assert os.fsdecode(multiprocessing.spawn.get_executable()) == sys.executable  # the wrapper is gone again
    with open(sys.argv[1] + ".tmp", "w") as out:
        out.write(f"{spawned.pid} {forked.pid} {after.pid}")
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    time.sleep(120)
"""


def test_children_started_inside_the_block_die_with_their_sigkilled_parent(tmp_path):
    """The mechanism alone, without vLLM: spawned and forked children of a helper die with it;
    one started after the block does not (the test ends it)."""
    (tmp_path / "helper.py").write_text(HELPER)
    pid_file = tmp_path / "pids"
    log = open(tmp_path / "helper.log", "w")
    helper = subprocess.Popen([sys.executable, str(tmp_path / "helper.py"), str(pid_file)], stdout=log, stderr=log)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + GONE_WITHIN_S
        while not pid_file.exists() and helper.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pid_file.exists(), (tmp_path / "helper.log").read_text()
        pids = [int(pid) for pid in pid_file.read_text().split()]
        started = {pid: start_time(pid) for pid in pids}
        helper.kill()
        helper.wait()
        deadline = time.monotonic() + GONE_WITHIN_S
        while (running(pids[0], started[pids[0]]) or running(pids[1], started[pids[1]])) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [running(pid, started[pid]) for pid in pids] == [False, False, True]
    finally:
        if helper.poll() is None:
            helper.kill()
            helper.wait()
        for pid in pids:
            if (started_at := start_time(pid)) is not None and running(pid, started_at):
                os.kill(pid, signal.SIGKILL)
        log.close()


@pytest.mark.vllm
@pytest.mark.slow
def test_sigkill_of_the_policy_service_takes_the_vllm_engine_with_it(tmp_path):
    config = tmp_path / "policy.yaml"
    config.write_text(CONFIG)
    process = subprocess.Popen(
        [sys.executable, "-m", "outrider.cli.main", "serve", "policy", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=open(tmp_path / "policy.log", "w"), text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    tree: dict[int, str] = {}
    try:
        wait_ready(process, timeout_s=300)
        tree = {pid: started for pid in descendants(process.pid) if (started := start_time(pid)) is not None}
        titles = {pid: title(pid) for pid in tree}
        assert any("VLLM::EngineCore" in name for name in titles.values()), titles

        process.kill()  # SIGKILL: the service runs no cleanup of its own
        process.wait()
        deadline = time.monotonic() + GONE_WITHIN_S
        survivors = [pid for pid, started in tree.items() if running(pid, started)]
        while survivors and time.monotonic() < deadline:
            time.sleep(0.2)
            survivors = [pid for pid in survivors if running(pid, tree[pid])]
        assert survivors == [], {pid: titles[pid] for pid in survivors}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid, started in tree.items():  # never leave an engine behind, whatever failed above
            if running(pid, started):
                os.kill(pid, signal.SIGKILL)

"""`outrider up`: the local stack as real supervised processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from outrider.stack import wait_serving

pytestmark = pytest.mark.slow

SERVICES = ("policy", "env", "reward", "curriculum")
LINE = re.compile(r"^(policy|env|reward|curriculum)\s+127\.0\.0\.1:(\d+)\s+SERVING")


def _config(tmp_path: Path, output_dir: Path | None = None) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(
        f"kind: run\nname: up\noutput_dir: {output_dir or tmp_path}\n"
        "policy:\n  backend: hf\n  model: tiny-random\n  http_port: null\n"
        "curriculum:\n  pools:\n    - type: env-service\n      envs: [math]\n"
    )
    return path


def _start(tmp_path: Path, output_dir: Path | None = None) -> tuple[subprocess.Popen, dict[str, int], list[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "outrider.cli.main", "up", str(_config(tmp_path, output_dir))],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    ports: dict[str, int] = {}
    lines: list[str] = []
    deadline = time.monotonic() + 300
    while len(ports) < len(SERVICES):
        line = process.stdout.readline()
        assert line or process.poll() is None, "".join(lines)
        lines.append(line)
        if match := LINE.match(line):
            ports[match.group(1)] = int(match.group(2))
        assert time.monotonic() < deadline, "".join(lines)
    return process, ports, lines


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_up_starts_every_service_healthy_and_ctrl_c_stops_them_all(tmp_path):
    process, ports, lines = _start(tmp_path)
    try:
        # Its embedded Redis keeps nothing across a restart: said before the services' lines.
        # The embedded Redis has a password (only user `outrider` may use it), never printed.
        assert any(re.match(r"^redis\s+redis://outrider:\*\*\*@127\.0\.0\.1:\d+.* \(embedded\)\s+persistence: none$", line) for line in lines), lines
        assert any(line.startswith("WARNING: the bus of this stack runs on a Redis without an append-only file") for line in lines), lines
        for name, port in ports.items():
            wait_serving(f"127.0.0.1:{port}", timeout_s=10)
        children = _children(process.pid)
        assert len(children) >= len(SERVICES)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output
        assert "stopped" in output
        assert not [pid for pid in children if _alive(pid)], "no service outlives `outrider up`"
    finally:
        if process.poll() is None:
            process.kill()


def test_a_service_that_dies_is_named_with_its_exit_status_and_the_stack_stops(tmp_path):
    process, ports, _ = _start(tmp_path)
    try:
        children = _children(process.pid)
        reward = next(pid for pid in children if "outrider.services.reward.main" in Path(f"/proc/{pid}/cmdline").read_text())
        os.kill(reward, signal.SIGKILL)
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 1
        assert re.search(r"service 'reward' \(pid \d+\) stopped: killed by signal 9", output), output
        assert not [pid for pid in children if _alive(pid)], "the other services were stopped too"
    finally:
        if process.poll() is None:
            process.kill()


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not (k.startswith("OUTRIDER_") and k.endswith("_ADDRESS"))}
    return subprocess.run([sys.executable, "-m", "outrider.cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_commands_find_the_services_of_a_running_up_without_an_address(tmp_path):
    process, ports, _ = _start(tmp_path, output_dir=tmp_path / "runs")
    state = tmp_path / "runs" / "up" / "stack" / "addresses.json"
    try:
        recorded = json.loads(state.read_text())
        assert recorded["pid"] == process.pid
        assert recorded["addresses"] == {name: f"127.0.0.1:{port}" for name, port in ports.items()}
        listed = _cli(tmp_path, "env", "list")
        assert listed.returncode == 0, listed.stderr
        assert "math" in listed.stdout and f"using the env service of runs/up (127.0.0.1:{ports['env']})" in listed.stderr
        curriculum = _cli(tmp_path, "curriculum", "state", "--json")
        assert curriculum.returncode == 0 and json.loads(curriculum.stdout)["strategy"], curriculum.stderr
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert not state.exists(), "the state file goes with the stack"
    missing = _cli(tmp_path, "env", "list")
    assert missing.returncode == 2
    assert "no env service address: pass --address HOST:PORT, set OUTRIDER_ENV_ADDRESS, or start a stack" in missing.stderr

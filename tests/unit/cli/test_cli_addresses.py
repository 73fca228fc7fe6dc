"""Where a command finds a service: --address, then OUTRIDER_<SERVICE>_ADDRESS, then the
newest live stack's state file under ./runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import typer

from outrider import stack
from outrider.cli import addresses
from outrider.cli.addresses import resolve_address


def _state(root, name: str, pid: int, env: str, mtime: float):
    path = root / "runs" / name / "stack" / "addresses.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"pid": pid, "addresses": {"env": env}}))
    os.utime(path, (mtime, mtime))


@pytest.fixture
def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_flag_then_the_variable_then_the_newest_live_stack(tmp_path, monkeypatch, dead_pid):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OUTRIDER_ENV_ADDRESS", raising=False)
    _state(tmp_path, "old", os.getpid(), "127.0.0.1:1001", mtime=1000)
    _state(tmp_path, "new", os.getpid(), "127.0.0.1:1002", mtime=2000)
    _state(tmp_path, "dead", dead_pid, "127.0.0.1:1003", mtime=3000)  # newest, but its stack is gone
    assert resolve_address("env", None) == "127.0.0.1:1002"
    monkeypatch.setenv("OUTRIDER_ENV_ADDRESS", "127.0.0.1:2000")
    assert resolve_address("env", None) == "127.0.0.1:2000"
    assert resolve_address("env", "127.0.0.1:3000") == "127.0.0.1:3000"


def test_no_address_anywhere_exits_2(tmp_path, monkeypatch, dead_pid):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OUTRIDER_REWARD_ADDRESS", raising=False)
    _state(tmp_path, "dead", dead_pid, "127.0.0.1:1003", mtime=3000)
    with pytest.raises(typer.Exit) as exit_:
        resolve_address("reward", None)
    assert exit_.value.exit_code == 2


def test_the_cli_and_the_stack_name_the_same_state_file():
    assert addresses.STATE_FILE == stack.STATE_FILE

"""Helpers for end-to-end runs of `outrider train` with the toy environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from testkit.toy_env import SPEC

TESTS_DIR = Path(__file__).resolve().parents[1]


def toy_run_config(tmp_path: Path, name: str, **overrides) -> Path:
    """A run config for the tiny random model on the `vowels` toy task."""
    spec = tmp_path / "vowels.yaml"
    spec.write_text(SPEC)
    config = {
        "kind": "run",
        "name": name,
        "output_dir": str(tmp_path / "runs"),
        "policy": {"backend": "hf", "model": "tiny-random-chars", "dtype": "float32", "http_port": None},
        "env": {"builtin_envs": ["math"], "spec_files": [str(spec)]},
        "curriculum": {"strategy": {"type": "uniform"}},
        "rollout": {
            "envs": ["vowels"],
            "group_size": 8,
            "workers": 2,
            "sampling": {"max_tokens": 24},
            "max_episode_tokens": 256,
        },
        "learner": {
            "model": "tiny-random-chars",
            "ranks": 1,
            "groups_per_step": 4,
            "max_steps": 20,
            "max_policy_lag": 2,
            "optimizer": {"lr": 1e-3},
            "metrics_port": None,
            "engine": {"micro_batch_tokens": 2048},
        },
        "evaluation": {"enabled": False},
    }
    _merge(config, overrides)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _merge(base: dict, overrides: dict) -> None:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def train_process(config: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "outrider.cli.main", "train", str(config), "--no-report", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def run_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children, grandchildren, ...)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found += children
        frontier += children
    return found


def wait_for_child(predicate, timeout: float, what: str, child) -> object:
    """Poll `predicate` until it returns something true; past `timeout`, fail with `what`
    and the end of the supervised `child`'s log."""
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s:\n{child.log_path.read_text()[-4000:]}")
        time.sleep(0.2)
    return found


def finish_train(process: subprocess.Popen, timeout: float = 600) -> str:
    """The output of a `train_process` once it has exited; past `timeout`, kill its whole
    process group and fail with the output's end."""
    try:
        output, _ = process.communicate(timeout=timeout)
    except Exception:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        raise AssertionError(f"`outrider train` did not finish in {timeout} s:\n{output[-5000:]}") from None
    return output

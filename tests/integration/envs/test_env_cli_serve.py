"""`outrider serve env --config f.yaml` as a real process, and `outrider env ...` against it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.sandbox

REPO_ROOT = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-m", "outrider.cli.main"]
OPENENV_URL = "http://127.0.0.1:9"


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, input=stdin, timeout=120, cwd=REPO_ROOT)


@pytest.fixture(scope="module")
def served_env(tmp_path_factory):
    """The env service started the way users start it; yields its address."""
    folder = tmp_path_factory.mktemp("env-serve")
    config = folder / "env.yaml"
    # An OpenEnv spec is registered without reaching its server (nothing listens at OPENENV_URL).
    openenv = folder / "guess-openenv.yaml"
    openenv.write_text(yaml.safe_dump({
        "name": "guess-openenv",
        "openenv": {"base_url": OPENENV_URL, "action_field": "guess", "seed_tasks": {"train": 2}},
    }))
    examples = REPO_ROOT / "examples" / "envs"
    config.write_text(yaml.safe_dump({
        "kind": "env",
        "server": {"port": 0, "metrics_port": None},
        "builtin_envs": ["math", "guess-number"],
        "spec_files": [str(examples / "guess-number-small.yaml"), str(examples / "calculator-agent.yaml"), str(openenv)],
    }))
    process = subprocess.Popen([*CLI, "serve", "env", "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    line = process.stdout.readline()
    if not line.startswith("OUTRIDER_READY"):
        process.kill()
        pytest.fail(f"env service did not start: {line!r} {process.stderr.read()[-2000:]}")
    fields = dict(part.split("=", 1) for part in line.split()[1:])
    yield f"127.0.0.1:{fields['port']}"
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0


def test_serve_registers_builtins_and_spec_files_from_config(served_env):
    listed = cli("env", "list", "--address", served_env)
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert names == ["calculator-agent", "guess-number", "guess-number-small", "guess-openenv", "math"]


def test_list_shows_where_each_kind_of_environment_runs(served_env):
    listed = cli("env", "list", "--address", served_env)
    assert listed.returncode == 0, listed.stderr
    # The last column, after `max_turns=N`: entry point, base URL or command line, as the specs give them.
    where = {line.split()[0]: line.split("max_turns=", 1)[1].split(None, 1)[1] for line in listed.stdout.splitlines()}
    assert where == {
        "calculator-agent": "python3 /agent/agent.py",  # examples/envs/calculator-agent.yaml's agent.command
        "guess-number": "outrider.envs.builtin.guess_number_env:GuessNumberEnv",
        "guess-number-small": "outrider.envs.builtin.guess_number_env:GuessNumberEnv",
        "guess-openenv": OPENENV_URL,
        "math": "outrider.envs.builtin.math_env:MathEnv",
    }


def test_register_a_yaml_spec_then_list_and_play_it(served_env, tmp_path):
    spec = tmp_path / "math-cli.yaml"
    spec.write_text(textwrap.dedent("""
        name: math-cli
        version: 2.0.0
        python: {entry_point: "outrider.envs.builtin.math_env:MathEnv"}
        max_turns: 2
        params: {difficulty: 0, num_train: 3}
    """))
    registered = cli("env", "register", str(spec), "--address", served_env)
    assert registered.returncode == 0, registered.stderr
    assert "registered math-cli 2.0.0 (python)" in registered.stdout
    again = cli("env", "register", str(spec), "--address", served_env)
    assert again.returncode == 1 and "ALREADY_EXISTS" in again.stderr

    tasks = cli("env", "tasks", "math-cli", "--address", served_env, "--reference")
    assert tasks.returncode == 0, tasks.stderr
    first = tasks.stdout.splitlines()[0]
    task_id, answer = first.split()[0], first.rsplit("-> ", 1)[1]
    assert len(tasks.stdout.splitlines()) == 3

    played = cli("env", "play", "math-cli", "--task", task_id, "--address", served_env, stdin=f"Answer: -1\nAnswer: {answer}\n")
    assert played.returncode == 0, played.stderr
    assert "-1 is not correct" in played.stdout
    assert "done: 2 turns, total reward 1, solved=True" in played.stdout


def test_invalid_spec_files_fail_with_field_paths(served_env, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Not Valid\nremote: {address: nowhere}\nmax_turns: 0\n")
    offline = cli("env", "validate", str(bad))
    assert offline.returncode == 1
    assert "name:" in offline.stderr and "remote.address:" in offline.stderr
    online = cli("env", "register", str(bad), "--address", served_env)
    assert online.returncode == 1 and "remote.address" in online.stderr
    examples = cli("env", "validate", *sorted(str(p) for p in (REPO_ROOT / "examples" / "envs").glob("*.yaml")))
    assert examples.returncode == 0, examples.stderr


def test_unreachable_service_is_a_clear_error(tmp_path):
    result = cli("env", "list", "--address", "127.0.0.1:1")
    assert result.returncode == 1 and "UNAVAILABLE" in result.stderr


def test_serve_refuses_a_bad_spec_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\npython: {entry_point: 'outrider.envs.nothing:Env'}\n")
    config = tmp_path / "env.yaml"
    config.write_text(yaml.safe_dump({"kind": "env", "server": {"metrics_port": None}, "spec_files": [str(bad)]}))
    result = subprocess.run([*CLI, "serve", "env", "--config", str(config)], capture_output=True, text=True, timeout=120, env={**os.environ})
    assert result.returncode == 1
    assert "python.entry_point" in result.stderr and str(bad) in result.stderr

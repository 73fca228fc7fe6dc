"""`KEY=VALUE` overrides on the command line of every command that takes a config, through
the real typer app: they reach the loaded config and the run's effective config, and a bad
one stops the command (exit 1) with the key named, before anything starts."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from outrider.cli.configs import effective_config
from outrider.cli.main import app
from outrider.cli.train_cmd import _load_run
from outrider.config import load_config
from outrider.train.runner import TrainRun

RUN = {
    "kind": "run",
    "name": "cli-ovr",
    "rollout": {"envs": ["math"], "group_size": 8},
    "policy": {"model": "tiny-random", "backend": "hf"},
    "learner": {"model": "tiny-random", "optimizer": {"lr": 1.0e-6}},
    "evaluation": {"enabled": False},
}


@pytest.fixture
def run_file(tmp_path) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({**RUN, "output_dir": str(tmp_path / "runs")}))
    return path


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_config_show_prints_the_overridden_values(run_file):
    result = _invoke("config", "show", str(run_file), "learner.optimizer.lr=3e-6", "rollout.group_size=16")
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["learner"]["optimizer"]["lr"] == 3e-6
    assert shown["rollout"]["group_size"] == 16
    assert shown["learner"]["model"] == "tiny-random"


def test_config_validate_applies_the_overrides_to_every_file(run_file, tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**RUN, "name": "other"}))
    result = _invoke("config", "validate", str(run_file), str(other), "rollout.group_size=16")
    assert result.exit_code == 0, result.output
    assert f"ok: {run_file} (kind: run)" in result.stdout and f"ok: {other} (kind: run)" in result.stdout
    result = _invoke("config", "validate", str(run_file), str(other), "rollout.group_sise=16")
    assert result.exit_code == 1
    for path in (run_file, other):
        assert f"{path}: invalid configuration\n  rollout.group_sise: unknown field" in result.stderr
    assert "did you mean group_size or min_group_size?" in result.stderr


def test_the_effective_run_yaml_records_the_overrides(run_file):
    """What `outrider train` does with its arguments, short of starting services: the CLI's
    loader (overrides + preflight), then TrainRun writing RUN_DIR/run.yaml (cluster mode, so
    no local stack is started)."""
    overrides = [
        "learner.optimizer.lr=3e-6", "rollout.group_size=16", "stack.mode=cluster",
        *(f"stack.addresses.{name}=127.0.0.1:1" for name in ("policy", "env", "reward", "curriculum")),
    ]
    run = _load_run(run_file, overrides)
    train = TrainRun(run)
    train.run_dir.mkdir(parents=True)
    effective = train._start_services()
    written = load_config(train.run_dir / "run.yaml")
    assert written == effective
    assert written.learner.optimizer.lr == 3e-6 and written.rollout.group_size == 16
    assert written.stack.addresses["curriculum"] == "127.0.0.1:1"
    assert load_config(run_file).learner.optimizer.lr == 1e-6  # the file itself is unchanged


def test_a_launched_process_reads_the_effective_config_from_the_run_folder(run_file):
    loaded = load_config(run_file, ["learner.max_steps=3"])
    assert effective_config(run_file, load_config(run_file), [], "learn.yaml") == run_file
    path = effective_config(run_file, loaded, ["learner.max_steps=3"], "learn.yaml")
    assert path == loaded.run_dir / "learn.yaml"
    assert path.read_text().startswith(f"# {run_file} with learner.max_steps=3\n")
    assert load_config(path) == loaded and loaded.learner.max_steps == 3
    assert [p.name for p in path.parent.iterdir()] == ["learn.yaml"]  # no partial file left


@pytest.mark.parametrize(
    "command",
    [
        ["train"], ["learn"], ["worker"], ["up"],
        ["eval", "--checkpoint", "base=tiny-random"],
    ],
    ids=lambda c: c[0],
)
def test_every_run_command_refuses_a_bad_override_naming_the_key(command, run_file):
    result = _invoke(command[0], str(run_file), "learner.optimizer.lrr=3e-6", *command[1:])
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        f"{run_file}: invalid configuration",
        "  learner.optimizer.lrr: unknown field (override 'learner.optimizer.lrr=3e-6'); did you mean lr?",
    ]
    assert not (run_file.parent / "runs").exists()  # nothing was started or written


def test_train_refuses_a_wrongly_typed_override_naming_the_key(run_file):
    result = _invoke("train", str(run_file), "--overwrite", "rollout.group_size=many")
    assert result.exit_code == 1
    assert "rollout.group_size: Input should be a valid integer" in result.stderr
    assert "(command line: rollout.group_size=many)" in result.stderr


@pytest.mark.parametrize("kind", ["sft", "dpo"])
def test_the_offline_trainers_refuse_a_bad_override_naming_the_key(kind, tmp_path):
    path = tmp_path / f"{kind}.yaml"
    path.write_text(yaml.safe_dump({"kind": kind, "output_dir": str(tmp_path / "runs"), "data": {"path": "x.jsonl"}}))
    result = _invoke(kind, str(path), "optimizer.lrr=1e-5")
    assert result.exit_code == 1
    assert "optimizer.lrr: unknown field (override 'optimizer.lrr=1e-5'); did you mean lr?" in result.stderr


def test_up_takes_overrides_of_the_built_in_stack_without_a_config():
    result = _invoke("up", "policy.modell=tiny-random")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "<defaults>: invalid configuration",
        "  policy.modell: unknown field (override 'policy.modell=tiny-random'); did you mean model?",
    ]


def test_serve_takes_overrides_of_the_service_config(run_file):
    result = _invoke("serve", "curriculum", "--config", str(run_file), "curriculum.windoww=5")
    assert result.exit_code == 2
    assert "curriculum.windoww: unknown field (override 'curriculum.windoww=5'); did you mean window?" in result.stderr
    result = _invoke("serve", "curriculum", "windoww=5")  # no file: the service config's own keys
    assert result.exit_code == 2
    assert "windoww: unknown field (override 'windoww=5'); did you mean window?" in result.stderr


def test_version_and_the_short_help_option():
    result = _invoke("--version")
    assert result.exit_code == 0 and result.stdout == f"outrider {version('outrider')}\n"
    for args in (["-h"], ["train", "-h"], ["config", "show", "-h"]):
        result = _invoke(*args)
        assert result.exit_code == 0 and "Usage:" in result.stdout, args
    assert "KEY=VALUE" in _invoke("train", "-h").stdout
    assert "--hf" in _invoke("export", "-h").stdout


def test_the_installed_console_script_prints_the_version():
    script = Path(sys.executable).with_name("outrider")
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout == f"outrider {version('outrider')}\n", done.stderr

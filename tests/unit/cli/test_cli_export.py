"""`outrider export`: what it resolves and what it refuses, without a training run (the
export itself, on a real checkpoint, is tests/integration/learner/test_export_command.py)."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from outrider.cli.main import app
from outrider.eval.checkpoints import resolve_checkpoint
from outrider.models import resolve_model


def _export(*args) -> object:
    return CliRunner().invoke(app, ["export", *map(str, args)])


def _checkpoint_layout(run_dir, config: dict) -> None:
    """The folders a learner leaves (checkpoints/LATEST, actor/step-N) and the run's config."""
    (run_dir / "checkpoints" / "actor" / "step-0000003").mkdir(parents=True)
    (run_dir / "checkpoints" / "LATEST").write_text("step-0000003\n")
    (run_dir / "run.yaml").write_text(yaml.safe_dump(config))


def test_the_initial_model_comes_from_a_run_or_an_offline_config(tmp_path):
    for kind, config in {
        "run": {"kind": "run", "learner": {"model": "tiny-random"}, "policy": {"model": "tiny-random"}},
        "sft": {"kind": "sft", "model": "tiny-random", "data": {"path": "x.jsonl"}},
    }.items():
        run_dir = tmp_path / kind
        _checkpoint_layout(run_dir, config)
        resolved = resolve_checkpoint("export", str(run_dir / "checkpoints"), where="export x")
        assert resolved.tag == "step-0000003" and resolved.model_from == resolve_model("tiny-random"), kind


def test_a_run_folder_without_run_yaml_is_refused_naming_the_file(tmp_path):
    (tmp_path / "run" / "checkpoints" / "actor" / "step-0000001").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "LATEST").write_text("step-0000001")
    result = _export(tmp_path / "run", "--hf", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: export {tmp_path / 'run'}: {tmp_path / 'run' / 'run.yaml'} is missing; "
        "it names the run's initial model (learner.model)\n"
    )
    assert not (tmp_path / "out").exists()


def test_an_hf_folder_or_a_built_in_model_needs_no_export(tmp_path):
    for source in (resolve_model("tiny-random"), "tiny-random"):
        result = _export(source, "--hf", tmp_path / "out")
        assert result.exit_code == 1
        assert "is already an HF model folder; give a step checkpoint" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_missing_checkpoint_is_named(tmp_path):
    result = _export(tmp_path / "nowhere", "--hf", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: export {tmp_path / 'nowhere'}: no such file or folder")

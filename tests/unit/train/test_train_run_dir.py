"""A fresh `outrider train` never mixes with an earlier run in the same folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from outrider.config import load_config
from outrider.train.runner import TrainError, TrainRun

DEMO = Path(__file__).resolve().parents[3] / "examples" / "demo.yaml"


def _run(tmp_path: Path, **kwargs) -> TrainRun:
    run = load_config(DEMO).model_copy(update={"output_dir": str(tmp_path)})
    return TrainRun(run, **kwargs)


def _earlier_run(run_dir: Path) -> None:
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text('{"step": 1}\n')


def test_an_empty_folder_is_claimed(tmp_path):
    train = _run(tmp_path)
    train._claim_run_dir()
    assert not train.run_dir.exists()  # nothing to remove, nothing removed


def test_an_earlier_run_is_refused_naming_what_is_there_and_the_ways_out(tmp_path):
    train = _run(tmp_path)
    _earlier_run(train.run_dir)
    with pytest.raises(TrainError) as error:
        train._claim_run_dir()
    message = str(error.value)
    assert str(train.run_dir) in message
    assert "metrics.jsonl" in message and "checkpoints" in message
    assert "--resume" in message and "--overwrite" in message
    assert (train.run_dir / "metrics.jsonl").exists()  # nothing was lost


def test_overwrite_removes_the_earlier_run(tmp_path):
    train = _run(tmp_path, overwrite=True)
    _earlier_run(train.run_dir)
    train._claim_run_dir()
    assert not train.run_dir.exists()


def test_resume_keeps_the_earlier_run(tmp_path):
    train = _run(tmp_path, resume=True, overwrite=True)
    _earlier_run(train.run_dir)
    train._claim_run_dir()
    assert (train.run_dir / "metrics.jsonl").read_text() == '{"step": 1}\n'

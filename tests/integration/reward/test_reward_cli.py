"""`outrider reward make-dataset | train | evaluate`, in process."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from outrider.cli.main import app as cli
from outrider.services.reward.prm.scalar_head import ScalarHeadPRM, read_meta


def metrics_line(output: str) -> dict:
    """The JSON metrics line `train` prints before its last line."""
    return json.loads(next(line for line in reversed(output.splitlines()) if line.startswith("{")))


def invoke(*args: str):
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_make_dataset_train_evaluate(tmp_path):
    data = tmp_path / "data"
    output = invoke("reward", "make-dataset", "--out", str(data), "--train", "200", "--test", "50", "--seed", "3")
    assert f"wrote {data / 'train.jsonl'} (200 records)" in output
    for name, count in (("train.jsonl", 200), ("test.jsonl", 50), ("pairs-train.jsonl", 200), ("pairs-test.jsonl", 50)):
        assert len((data / name).read_text().splitlines()) == count
    model = tmp_path / "model"
    output = invoke("reward", "train", "--data", str(data / "train.jsonl"), "--eval", str(data / "test.jsonl"), "--out", str(model), "--steps", "5", "--batch-size", "4")
    metrics = metrics_line(output)
    assert 0.0 <= metrics["heldout_auc"] <= 1.0 and metrics["train_records"] == 200
    meta = read_meta(model)
    assert meta["objective"] == "classification" and meta["step_separator"] == "\n" and meta["settings"]["steps"] == 5
    assert ScalarHeadPRM(model).model.config.num_labels == 1
    evaluated = metrics_line(invoke("reward", "evaluate", "--model", str(model), "--data", str(data / "test.jsonl")))
    assert evaluated["auc"] == pytest.approx(metrics["heldout_auc"], abs=1e-12)


def test_train_reports_bad_data_with_the_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "steps": ["a"], "labels": [2]}\n')
    result = CliRunner().invoke(cli, ["reward", "train", "--data", str(bad), "--out", str(tmp_path / "m")])
    assert result.exit_code == 1 and "bad.jsonl:1: `labels` must be" in result.output
    result = CliRunner().invoke(cli, ["reward", "train", "--data", str(bad), "--out", str(tmp_path / "m"), "--objective", "dpo"])
    assert result.exit_code == 1 and "--objective must be classification or bradley-terry" in result.output


@pytest.mark.slow
def test_bradley_terry_outcome_model_ranks_correct_solutions_first(tmp_path):
    data = tmp_path / "data"
    invoke("reward", "make-dataset", "--out", str(data), "--train", "2000", "--test", "300", "--seed", "0")
    model = tmp_path / "orm"
    output = invoke(
        "reward", "train", "--objective", "bradley-terry", "--data", str(data / "pairs-train.jsonl"),
        "--eval", str(data / "pairs-test.jsonl"), "--out", str(model), "--steps", "300", "--batch-size", "16",
    )
    metrics = metrics_line(output)
    print(metrics)
    # Held-out pairs (prompts unseen in training): the correct solution must score higher.
    assert metrics["heldout_pair_accuracy"] > 0.8
    assert read_meta(model)["objective"] == "bradley-terry"


def test_score_against_a_service_process(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from outrider.config import RewardServiceConfig, ServerConfig, dump_yaml
    from outrider.stack import wait_serving

    config = tmp_path / "reward.yaml"
    config.write_text(dump_yaml(RewardServiceConfig(server=ServerConfig(metrics_port=None))))
    process = subprocess.Popen(
        [sys.executable, "-m", "outrider.services.reward.main", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        for line in process.stdout:
            if line.startswith("OUTRIDER_READY"):
                address = "127.0.0.1:" + dict(p.split("=", 1) for p in line.split()[1:])["port"]
                break
        else:
            pytest.fail(f"reward service exited with {process.wait()}")
        wait_serving(address, timeout_s=30)
        result = json.loads(invoke("reward", "score", "--address", address, "--response", "\\boxed{\\frac{1}{2}}", "--reference", "0.5"))
        assert result["reward"] == 1.0 and result["components"][0]["detail"] == "correct: 1/2 (boxed) = 0.5"
        failed = CliRunner().invoke(cli, ["reward", "score", "--address", address, "--response", "42"])
        # No reference: the math verifier cannot judge -> no reward, exit status 2.
        assert failed.exit_code == 2 and json.loads(failed.output)["status"]["code"] == "ERROR"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0

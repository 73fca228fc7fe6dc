"""`outrider eval` refuses bad input with a clear error naming the problem, before any
sampling: no policy service was started, no worker ran, nothing was stored."""

from __future__ import annotations

import os

import pytest
import yaml
from typer.testing import CliRunner

from outrider.cli.main import app
from testkit.e2e import TESTS_DIR
from testkit.eval_env import SPEC as TRAIN_ONLY_SPEC
from testkit.policy import perturbed_checkpoint


def _config(tmp_path, envs=("guess-number",)) -> str:
    spec = tmp_path / "train-only.yaml"
    spec.write_text(TRAIN_ONLY_SPEC)
    config = {
        "kind": "run",
        "name": "badeval",
        "output_dir": str(tmp_path / "runs"),
        "stack": {"services": ["policy", "env"]},
        "policy": {"backend": "hf", "model": "tiny-random-chars", "dtype": "float32", "http_port": None},
        "learner": {"model": "tiny-random-chars"},
        "env": {"builtin_envs": ["guess-number"], "spec_files": [str(spec)] if "train-only" in envs else []},
        "rollout": {"envs": list(envs), "workers": 1},
    }
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _run(tmp_path, *args: str, envs=("guess-number",)):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["eval", _config(tmp_path, envs), *args, "--out", str(out)])
    return result, out


def _nothing_sampled(out, manifest: bool = False) -> None:
    assert not (out / "samples").exists() and not (out / "records").exists()
    assert manifest or not (out / "manifest.json").exists()
    assert not list(out.glob("logs/*/stack/policy.log")), "a policy service was started"
    assert not list(out.glob("logs/rollout-worker-*.log")), "a rollout worker was started"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["-c", "base=tiny-random-chars", "-c", "rl=/no/such/checkpoint"], ["rl=/no/such/checkpoint", "no such file or folder"]),
        (["-c", "base=tiny-random-chars", "-c", "base=tiny-random-chars"], ["'base' is given twice"]),
        (["-c", "base=tiny-random-chars", "--n", "4", "--k", "2", "--k", "8"], ["--k 8", "k <= n = 4"]),
        (["-c", "base=tiny-random-chars", "--base", "rl"], ["--base 'rl'", "not one of the checkpoints"]),
        (["-c", "base=tiny-random-chars", "-c", "other=tiny-random"], ["other=tiny-random", "tokenizer differs", "vocabularies differ"]),
        (["-c", "base=tiny-random-chars", "--search", "beam"], ["--search beam", "reward.prm is not set"]),
        (["-c", "base=tiny-random-chars", "--search", "greedy"], ["--search 'greedy'", "one of none, beam, mcts"]),
    ],
    ids=["unknown-checkpoint", "duplicate-name", "k-above-n", "unknown-base", "other-tokenizer", "search-without-prm", "unknown-search"],
)
def test_bad_arguments_fail_before_anything_starts(tmp_path, args, words):
    result, out = _run(tmp_path, *args)
    assert result.exit_code == 1, result.output
    for word in words:
        assert word in result.output, result.output
    assert not out.exists(), "nothing was written"


def test_a_tokenizer_that_differs_only_in_its_files_is_caught(tmp_path):
    # Same weights shape, one token id swapped in tokenizer.json: the vocabularies differ.
    import json

    from outrider.models import resolve_model

    copy = tmp_path / "swapped"
    perturbed_checkpoint(resolve_model("tiny-random-chars"), copy, scale=0.0)
    tokenizer = json.loads((copy / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    vocab["a"], vocab["b"] = vocab["b"], vocab["a"]
    (copy / "tokenizer.json").write_text(json.dumps(tokenizer))
    result, out = _run(tmp_path, "-c", "base=tiny-random-chars", "-c", f"rl={copy}")
    assert result.exit_code == 1 and "tokenizer differs" in result.output, result.output
    assert not out.exists()


def test_an_environment_without_a_test_split_stops_before_sampling(tmp_path, monkeypatch):
    # The env service (a subprocess) imports the test environment from tests/.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]))
    result, out = _run(tmp_path, "-c", "base=tiny-random-chars", envs=("guess-number", "train-only"))
    assert result.exit_code == 1, result.output
    assert "environment 'train-only'" in result.output and "no test split" in result.output, result.output
    _nothing_sampled(out)


def test_an_earlier_evaluation_is_neither_mixed_with_nor_resumed_with_other_settings(tmp_path):
    import json

    out = tmp_path / "out"
    out.mkdir()
    manifest = {"checkpoints": {"base": {"source": "tiny-random-chars"}}, "base": "base", "n": 4, "seed": 0,
                "tasks": ["guess-number/test-00000"], "env": ["guess-number"], "temperature": 1.0,
                "max_solutions": 32, "max_entropy_tokens": 256}
    (out / "manifest.json").write_text(json.dumps(manifest))
    result, _ = _run(tmp_path, "-c", "base=tiny-random-chars", "--n", "4", "--tasks", "1")
    assert result.exit_code == 1 and "already holds an evaluation" in result.output and "--resume" in result.output
    result, _ = _run(tmp_path, "-c", "base=tiny-random-chars", "--n", "8", "--tasks", "1", "--resume")
    assert result.exit_code == 1 and "other settings (n: 4 -> 8)" in result.output, result.output
    assert json.loads((out / "manifest.json").read_text()) == manifest
    _nothing_sampled(out, manifest=True)

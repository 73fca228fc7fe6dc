"""`outrider export CHECKPOINT --hf DIR` on a real learner run: the folder loads in
transformers and scores tokens exactly as the learner's model of that step does.

The run is `outrider learn CONFIG learner.max_steps=1` on a config that says 2 steps, with
groups for 2 steps on the bus: one checkpoint (step 1) is there only if the override
reached the learner's ranks (through RUN_DIR/learn.yaml)."""

from __future__ import annotations

import shutil
import time

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from outrider.cli.main import app
from outrider.config import load_config
from outrider.models import resolve_model
from testkit.learner import BAD, GOOD, PROMPT, finish, learn_process, learnable_groups, produce_groups, write_run_config

pytestmark = pytest.mark.slow

TOKENS = torch.tensor([PROMPT + GOOD + BAD])


@pytest.fixture(scope="module")
def trained_run(any_redis_url, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("export")
    prefix = f"export-{time.monotonic_ns()}"
    produce_groups(any_redis_url, prefix, learnable_groups(4, prefix="x"))
    run_dir = tmp_path / "run"
    learner = {"ranks": 1, "max_steps": 2, "keep_checkpoints": 2}
    config = write_run_config(tmp_path / "run.yaml", run_dir, any_redis_url, prefix, learner)
    finish(learn_process(config, "learner.max_steps=1"), timeout=600)
    shutil.copy(config, run_dir / "run.yaml")  # `outrider train` leaves its effective config there
    return run_dir


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=TOKENS).logits


def _learner_model(run_dir, tag: str):
    """The learner's actor at `tag`: the initial architecture with the module weights
    DeepSpeed saved (ZeRO 0: the whole module in one file), read without export code."""
    model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random"), dtype=torch.float32).eval()
    states = torch.load(run_dir / "checkpoints" / "actor" / tag / "mp_rank_00_model_states.pt", map_location="cpu", weights_only=False)
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in states["module"].items()}, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}  # tied to the embeddings
    return model


def _export(*args: str):
    return CliRunner().invoke(app, ["export", *map(str, args)])


def test_the_override_reached_the_learner_ranks(trained_run):
    assert load_config(trained_run / "learn.yaml").learner.max_steps == 1
    assert sorted(p.name for p in (trained_run / "checkpoints" / "actor").iterdir() if p.is_dir()) == ["step-0000001"]


def test_a_run_folder_exports_its_newest_checkpoint_scoring_tokens_like_the_learner(trained_run, tmp_path):
    out = tmp_path / "hf"
    result = _export(trained_run, "--hf", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == str(out)
    exported = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    assert torch.equal(_logits(exported), _logits(_learner_model(trained_run, "step-0000001")))
    # The learner's own end-of-run export (learner/loop.py → export_hf, another code path).
    final = AutoModelForCausalLM.from_pretrained(trained_run / "final", dtype=torch.float32).eval()
    assert torch.equal(_logits(exported), _logits(final))
    initial = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random"), dtype=torch.float32).eval()
    assert not torch.allclose(_logits(exported), _logits(initial), atol=1e-6)  # the step changed the weights
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer("2 + 2 =").input_ids == AutoTokenizer.from_pretrained(resolve_model("tiny-random"))("2 + 2 =").input_ids


def test_a_step_is_exported_by_name_and_an_existing_folder_only_with_overwrite(trained_run, tmp_path):
    step = trained_run / "checkpoints" / "step-1"
    out = tmp_path / "hf"
    assert _export(step, "--hf", out).exit_code == 0
    first = (out / "model.safetensors").read_bytes()
    result = _export(step, "--hf", out)
    assert result.exit_code == 1
    assert result.stderr == f"error: --hf {out}: an HF model folder is already there; --overwrite replaces it\n"
    result = _export(step, "--hf", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").read_bytes() == first


def test_what_cannot_be_exported_is_refused_with_the_reason(trained_run, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    result = _export(trained_run / "checkpoints" / "step-1", "--hf", busy, "--overwrite")
    assert result.exit_code == 1 and "holds files and is no HF model folder" in result.stderr
    assert (busy / "notes.txt").read_text() == "mine"

    result = _export(trained_run / "checkpoints" / "step-7", "--hf", tmp_path / "x")
    assert result.exit_code == 1
    assert "no actor checkpoint for step 7 (present: step-0000001)" in result.stderr
    assert result.stderr.startswith(f"error: export {trained_run / 'checkpoints' / 'step-7'}: ")

    result = _export(trained_run / "final", "--hf", tmp_path / "x")
    assert result.exit_code == 1 and "is already an HF model folder" in result.stderr
    assert not (tmp_path / "x").exists()

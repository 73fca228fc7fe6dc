"""`outrider eval`'s checkpoint sources: a run's DeepSpeed checkpoint becomes an HF folder
with exactly the weights the learner ended with (its own `final/` export is the oracle:
written from the engine's module by a different path, learner/loop.py → export_hf)."""

from __future__ import annotations

import shutil
import time

import pytest
import torch
from safetensors.torch import load_file

from outrider.eval.checkpoints import CheckpointError, resolve_checkpoint, tokenizer_difference
from testkit.learner import finish, learn_process, learnable_groups, produce_groups, write_run_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=[0, 2], ids=["zero0", "zero2"])
def trained_run(request, any_redis_url, tmp_path_factory):
    """One real learner step (DeepSpeed, one CPU rank) on tiny-random: without ZeRO the
    model states file holds the module; with ZeRO 2 the fp32 weights are reassembled
    from the optimizer partitions (DeepSpeed's zero_to_fp32)."""
    tmp_path = tmp_path_factory.mktemp("ds")
    prefix = f"evalckpt-{time.monotonic_ns()}"
    produce_groups(any_redis_url, prefix, learnable_groups(2, prefix="e"))
    run_dir = tmp_path / "run"
    learner = {"ranks": 1, "max_steps": 1, "engine": {"zero_stage": request.param, "micro_batch_tokens": 256}}
    config = write_run_config(tmp_path / "run.yaml", run_dir, any_redis_url, prefix, learner)
    finish(learn_process(config), timeout=600)
    shutil.copy(config, run_dir / "run.yaml")  # `outrider train` leaves its effective config there
    return run_dir


def _weights(folder) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_a_deepspeed_checkpoint_is_served_as_the_weights_it_holds(trained_run, tmp_path):
    checkpoint = resolve_checkpoint("rl", str(trained_run / "checkpoints" / "step-1"))
    assert checkpoint.needs_export and checkpoint.tag == "step-0000001"
    folder = checkpoint.hf_folder(tmp_path / "models")
    exported, final = _weights(folder), _weights(trained_run / "final")
    assert set(final) <= set(exported)
    for name, tensor in final.items():
        assert torch.equal(exported[name].float(), tensor.float()), name
    # It is not simply the initial model: the step changed the weights.
    from outrider.models import resolve_model

    initial = _weights(resolve_model("tiny-random"))
    assert any(not torch.equal(initial[name], final[name]) for name in final)
    assert tokenizer_difference(trained_run / "final", folder) is None
    # The same checkpoint named three more ways; the run folder itself means its final export.
    for source in (trained_run / "checkpoints" / "actor" / "step-0000001", trained_run / "checkpoints"):
        assert resolve_checkpoint("rl", str(source)).tag == "step-0000001"
    assert resolve_checkpoint("rl", str(trained_run)).folder == (trained_run / "final").resolve()


def test_a_missing_step_names_the_steps_there_are(trained_run):
    with pytest.raises(CheckpointError, match=r"no actor checkpoint for step 7 \(present: step-0000001\)"):
        resolve_checkpoint("rl", str(trained_run / "checkpoints" / "step-7"))

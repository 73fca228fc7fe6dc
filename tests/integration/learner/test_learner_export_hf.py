"""`learner.export_hf_every`: a real `outrider learn` run writes an HF folder every N steps
that transformers loads, holding exactly the weights of that step's checkpoint."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from outrider.models import resolve_model
from testkit.learner import finish, learn_process, learnable_groups, produce_groups, write_run_config

pytestmark = pytest.mark.slow


def _checkpoint_weights(run_dir, tag: str) -> dict[str, torch.Tensor]:
    """The actor's weights as DeepSpeed saved them (ZeRO 0: the whole module in one file)."""
    states = torch.load(run_dir / "checkpoints" / "actor" / tag / "mp_rank_00_model_states.pt", map_location="cpu", weights_only=False)
    return states["module"]


def _hf_weights(folder) -> dict[str, torch.Tensor]:
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).state_dict()


def test_every_step_exports_a_loadable_folder_equal_to_its_checkpoint(any_redis_url, bus_prefix, tmp_path):
    produce_groups(any_redis_url, bus_prefix, learnable_groups(4))
    run_dir = tmp_path / "run"
    learner = {"ranks": 1, "max_steps": 2, "checkpoint_every": 1, "keep_checkpoints": 2, "export_hf_every": 1}
    config = write_run_config(tmp_path / "run.yaml", run_dir, any_redis_url, bus_prefix, learner)
    finish(learn_process(config))

    assert sorted(p.name for p in (run_dir / "hf").iterdir()) == ["step-0000001", "step-0000002"]
    exported = {}
    for tag in ("step-0000001", "step-0000002"):
        folder = run_dir / "hf" / tag
        assert AutoTokenizer.from_pretrained(folder)("2 + 2 =").input_ids  # the tokenizer came along
        exported[tag] = _hf_weights(folder)
        saved = _checkpoint_weights(run_dir, tag)
        assert saved and set(saved) <= set(exported[tag])
        for name, tensor in saved.items():
            # fp32 training, fp32 export: the same numbers, not merely close ones.
            assert torch.equal(exported[tag][name], tensor.float()), f"{tag}: {name} differs from the checkpoint"

    initial = _hf_weights(resolve_model("tiny-random"))
    trained = [name for name in initial if not torch.equal(initial[name], exported["step-0000001"][name])]
    assert trained, "step 1's export still holds the initial weights"
    assert any(not torch.equal(exported["step-0000001"][n], exported["step-0000002"][n]) for n in trained), \
        "the two exports hold the same weights"
    final = _hf_weights(run_dir / "final")
    assert all(torch.equal(final[name], exported["step-0000002"][name]) for name in final)

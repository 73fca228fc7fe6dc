"""Staged weights: the file holds exactly `tensor.to(served dtype)` (the cast the policy's
loaders apply to streamed tensors), a tied alias once, and nothing is left behind."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from outrider.learner.staged_weights import WeightsStager, served_tensors, write_safetensors
from outrider.learner.weight_sync import resolve_mode, same_host
from outrider.models import staging


def _state() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    embed = torch.randn(11, 6, generator=generator)
    return {
        "embed.weight": embed,
        "norm.weight": torch.randn(6, generator=generator) * 1e-3 + 1,
        "odd.weight": torch.randn(3, 5, generator=generator),
        "empty.weight": torch.zeros(0, 4),
        "positions": torch.arange(5),
        "lm_head.weight": embed,  # tied: the same tensor under a second name
    }


def _read(file) -> dict[str, torch.Tensor]:
    with safe_open(str(file), "pt") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_the_file_holds_each_tensor_cast_exactly_as_the_loader_would(tmp_path, dtype):
    state = _state()
    file = tmp_path / "v1.safetensors"
    write_safetensors(served_tensors(state, dtype), file)
    back = _read(file)
    assert sorted(back) == sorted(set(state) - {"lm_head.weight"})
    for name, tensor in back.items():
        expected = torch.empty(state[name].shape, dtype=dtype if state[name].is_floating_point() else state[name].dtype)
        expected.copy_(state[name])  # what `param.copy_(streamed)` does on the policy side
        assert tensor.dtype == expected.dtype and torch.equal(tensor, expected), name
    assert not list(tmp_path.glob("*.partial"))


def test_the_stager_keeps_no_version_after_discard_and_no_folder_after_close(tmp_path, monkeypatch):
    monkeypatch.setattr(staging, "SHM", tmp_path / "shm")
    monkeypatch.setenv("OUTRIDER_CACHE", str(tmp_path / "cache"))
    (tmp_path / "shm").mkdir()
    stager = WeightsStager()
    first = stager.write(_state(), torch.bfloat16, 1)
    assert first.parent.parent == tmp_path / "shm" / f"outrider-{__import__('os').getuid()}"
    stager.discard(first)
    second = stager.write(_state(), torch.bfloat16, 2)
    assert list(second.parent.iterdir()) == [second]
    stager.discard(second)
    folder = stager.folder
    stager.close()
    assert not folder.exists()


@pytest.mark.parametrize(
    "address, expected",
    [("127.0.0.1:50051", "shm"), ("localhost:1", "shm"), ("[::1]:1", "shm"), ("unix:/run/policy.sock", "shm"),
     ("policy.default.svc:50051", "stream"), ("[2001:db8::1]:50051", "stream")],
)
def test_auto_stages_only_for_a_policy_on_this_host(address, expected):
    assert same_host(address) == (expected == "shm")
    assert resolve_mode("auto", address) == expected
    assert resolve_mode("stream", "127.0.0.1:1") == "stream"

"""Staged weights files (`WeightsHeader.staged_file`): a policy serving bfloat16 and sent
float32 weights serves exactly what streaming the same tensors serves (both backends);
files outside the staging roots are refused, and the service keeps serving."""

from __future__ import annotations

import socket

import grpc
import pytest
import torch

from outrider.learner.staged_weights import WeightsStager
from outrider.models import resolve_model
from outrider.clients.policy import PolicyClient
from outrider.models.staging import staging_roots
from outrider.services.policy.weights import read_checkpoint, save_tensors
from testkit.policy import PolicyServerThread, max_abs_diff, policy_config

SEQUENCES = [([1, 4093, 198, 6004, 2, 198, 1, 520, 9531, 198, 504, 2119, 30], 3), ([6403, 1980, 253, 655, 42, 997], 1)]
BACKENDS = ["hf", pytest.param("vllm", marks=[pytest.mark.vllm, pytest.mark.slow])]


@pytest.fixture(scope="module", params=BACKENDS)
def client(request):
    """bfloat16 serving, so that sending float32 weights exercises the cast."""
    with PolicyServerThread(policy_config(request.param, dtype="bfloat16")) as server:
        with PolicyClient(server.address, timeout_s=300) as policy:
            yield policy


def _scores(client) -> list[list[float]]:
    return [list(s.logprobs) for s in client.score_tokens(SEQUENCES).sequences]


def _noisy(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = read_checkpoint(resolve_model("tiny-random"))  # float32, like the learner's weights
    return {name: t + 0.05 * torch.randn(t.shape, generator=generator) for name, t in state.items()}


def _streamed_leftovers() -> list[str]:
    mine = f"streamed+{socket.gethostname()}+"
    return [p.name for root in staging_roots() if root.is_dir() for p in root.iterdir() if p.name.startswith(mine)]


def test_a_staged_file_serves_exactly_the_weights_streaming_serves(client):
    version = client.info().policy_version
    assert client.info().dtype == "bfloat16"
    original = _scores(client)
    stager = WeightsStager()
    noisy = _noisy(seed=3)
    try:
        file = stager.write(noisy, torch.bfloat16, version + 1)
        reply = client.update_weights_from_staged_file(version + 1, file)
        assert (reply.previous_version, reply.version) == (version, version + 1)
        assert reply.reload_seconds > 0 and reply.receive_seconds == 0 and reply.stage_seconds == 0
        assert file.exists(), "the service reads the file in place and leaves it to its owner"
        staged = _scores(client)
        assert max_abs_diff(staged, original) > 0.05, "the staged weights were loaded"

        reply = client.update_weights_from_state_dict(version + 2, noisy)
        assert reply.version == version + 2 and reply.receive_seconds > 0
        assert max_abs_diff(_scores(client), staged) <= 1e-6
        assert _streamed_leftovers() == [], "the backend removes the file it staged streamed tensors in"

        restored = stager.write(read_checkpoint(resolve_model("tiny-random")), torch.bfloat16, version + 3)
        client.update_weights_from_staged_file(version + 3, restored)
        # the start-up load cast the same float32 checkpoint
        assert max_abs_diff(_scores(client), original) <= 1e-6
    finally:
        stager.close()


def test_a_staged_file_outside_the_staging_roots_is_refused_and_nothing_changes(client, tmp_path):
    version = client.info().policy_version
    before = _scores(client)
    outside = tmp_path / "v1.safetensors"
    save_tensors(_noisy(seed=4), outside)
    with pytest.raises(grpc.RpcError) as failure:
        client.update_weights_from_staged_file(version + 1, outside)
    assert failure.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert str(outside) in failure.value.details() and "staging roots" in failure.value.details()

    stager = WeightsStager()
    try:
        escape = stager.write({}, torch.bfloat16, version + 1).parent / "escape.safetensors"
        escape.symlink_to(outside)
        with pytest.raises(grpc.RpcError) as failure:
            client.update_weights_from_staged_file(version + 1, escape)
        assert failure.value.code() == grpc.StatusCode.PERMISSION_DENIED and str(escape) in failure.value.details()
        with pytest.raises(grpc.RpcError) as failure:
            client.update_weights_from_staged_file(version + 1, escape.parent / "missing.safetensors")
        assert failure.value.code() == grpc.StatusCode.NOT_FOUND
        incomplete = stager.write({"model.norm.weight": torch.ones(128)}, torch.bfloat16, version + 1)
        with pytest.raises(grpc.RpcError) as failure:
            client.update_weights_from_staged_file(version + 1, incomplete)
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "missing" in failure.value.details()
    finally:
        stager.close()
    assert client.info().policy_version == version
    assert _scores(client) == before
    reply = client.generate([SEQUENCES[0][0]], temperature=0.0, max_tokens=4)
    assert reply.policy_version == version and len(reply.results[0].completions[0].token_ids) > 0

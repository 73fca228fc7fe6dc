"""Same-host weight sync (`sync.mode: auto` -> shm) from a real learner engine to a real policy
service: exactly the weights `stream` serves, versions and reconcile as before, no file left,
and a fallback to streaming when the policy cannot read the learner's file."""

from __future__ import annotations

import grpc
import pytest
import torch

from outrider.config.learner import EngineConfig, OptimizerConfig, WeightSyncConfig
from outrider.learner import staged_weights
from outrider.learner.engine import init_distributed, trainable_engine
from outrider.learner.models import load_actor, model_folder
from outrider.learner.weight_sync import WeightPublisher
from outrider.clients.policy import PolicyClient
from testkit.learner import GOOD, PROMPT
from testkit.policy import PolicyServerThread, policy_config

pytestmark = pytest.mark.slow

BACKENDS = ["hf", pytest.param("vllm", marks=[pytest.mark.vllm])]


@pytest.fixture(scope="module", params=BACKENDS)
def policy(request):
    """The policy serves bfloat16: the learner's float32 weights must be cast exactly as streaming casts them."""
    with PolicyServerThread(policy_config(request.param, dtype="bfloat16")) as server:
        yield server


@pytest.fixture(scope="module")
def engine():
    init_distributed("gloo")
    torch.manual_seed(0)
    return trainable_engine(load_actor("tiny-random"), EngineConfig(), OptimizerConfig(lr=1e-3))


def _perturb(engine, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in engine.module.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))


def _publisher(mode: str, address: str, tmp_path) -> WeightPublisher:
    return WeightPublisher(WeightSyncConfig(mode=mode), address, tmp_path / "weights", model_folder("tiny-random"))


def _served(address: str) -> tuple[list[float], int]:
    with PolicyClient(address) as client:
        reply = client.score_tokens([(PROMPT + GOOD, len(PROMPT))])
    return list(reply.sequences[0].logprobs), reply.policy_version


def test_shm_serves_exactly_the_streamed_weights_and_keeps_versions(policy, engine, tmp_path):
    address = policy.address
    shm, stream = _publisher("auto", address, tmp_path), _publisher("stream", address, tmp_path)
    assert shm.mode == "shm", "a policy on 127.0.0.1 is on this host"
    try:
        # Reconcile: a policy ahead of the learner's checkpoint (an earlier life published
        # `ahead`) gets the checkpoint's weights as the next version.
        ahead = _served(address)[1] + 2
        stream.publish(engine, ahead)
        _perturb(engine, seed=1)
        first = shm.reconcile(engine, ahead - 1)
        assert first == ahead + 1 and _served(address)[1] == first
        assert shm.reconcile(engine, first) == first, "nothing to send for the version it serves"
        before, _ = _served(address)

        _perturb(engine, seed=2)
        metrics = shm.publish(engine, first + 1)
        assert metrics["sync/write_seconds"] > 0 and metrics["sync/policy_reload_seconds"] > 0
        assert metrics["sync/policy_receive_seconds"] == 0, "no tensor crossed gRPC"
        staged, version = _served(address)
        assert version == first + 1
        assert max(abs(a - b) for a, b in zip(staged, before)) > 1e-3, "the staged weights were loaded"
        assert list(shm._stager.folder.iterdir()) == [], "a version's file goes once the policy has answered"

        stream.publish(engine, first + 2)
        streamed, version = _served(address)
        assert version == first + 2
        assert max(abs(a - b) for a, b in zip(staged, streamed)) <= 1e-6
        folder = shm._stager.folder
    finally:
        shm.close()
        stream.close()
    assert not folder.exists(), "closing the publisher removes its staging folder"


def test_auto_falls_back_to_streaming_when_the_policy_cannot_read_the_file(policy, engine, tmp_path, monkeypatch):
    # A staging root the policy does not accept stands in for a policy in another container.
    monkeypatch.setattr(staged_weights, "staging_root", lambda needed: tmp_path)
    address = policy.address
    version = _served(address)[1]
    explicit = _publisher("shm", address, tmp_path)
    try:
        with pytest.raises(grpc.RpcError) as failure:
            explicit.publish(engine, version + 1)
        assert failure.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert str(tmp_path) in failure.value.details()
    finally:
        explicit.close()
    assert _served(address)[1] == version, "the refused update changed nothing"

    auto = _publisher("auto", address, tmp_path)
    try:
        _perturb(engine, seed=3)
        auto.publish(engine, version + 1)
        assert auto.mode == "stream"
        fallback, served = _served(address)
        assert served == version + 1
        reference = _publisher("stream", address, tmp_path)
        reference.publish(engine, version + 2)
        reference.close()
        assert max(abs(a - b) for a, b in zip(fallback, _served(address)[0])) <= 1e-6
        assert not list(tmp_path.glob("learner+*")), "the abandoned staging folder is gone"
    finally:
        auto.close()

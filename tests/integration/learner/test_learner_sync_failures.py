"""A weight sync that misses its deadline: a named error on the learner, the old weights
(and version) still serving, and the next sync getting through.

The policy is real (HF backend, gRPC on port 0); a long generation holds its weights, so
an update waits in the pause (in-flight calls drain before a swap) until the learner's
`sync.timeout_s` passes."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from transformers import AutoModelForCausalLM

from outrider.clients.policy import PolicyClient
from outrider.config.learner import WeightSyncConfig
from outrider.learner.loop import Learner
from outrider.learner.weight_sync import WeightPublisher, WeightSyncError
from outrider.models import resolve_model
from testkit.policy import PolicyServerThread, policy_config

pytestmark = pytest.mark.slow

PROMPT = [1, 4093, 198, 6004, 2, 198, 1, 520, 9531, 198]


class ZeroStage0Engine:
    """What the publisher reads of a DeepSpeed engine below ZeRO-3: its module."""

    def __init__(self, module):
        self.module = module

    @staticmethod
    def zero_optimization_partition_weights() -> bool:
        return False


@pytest.fixture(scope="module")
def policy():
    with PolicyServerThread(policy_config("hf")) as server:
        with PolicyClient(server.address, timeout_s=120) as client:
            yield server, client


def _held_generation(client):
    """A long generation, left unread: it holds the served weights until cancelled (or done:
    16 prompts × 16 samples × 256 tokens, the fixture's limits, take the HF backend ~35 s on
    the 2-core box; one prompt took 3.5 s, less than this test's two 1.5 s deadlines and what
    lies between them under CI load). A cancel releases it within ~0.05 s."""
    stream = client.generate_stream([PROMPT] * 16, n=16, max_tokens=256, temperature=1.0, ignore_eos=True, seed=2)
    next(stream)
    return stream


def _release(stream, core) -> None:
    stream.cancel()
    deadline = time.monotonic() + 30
    while core.in_flight:
        assert time.monotonic() < deadline, "the cancelled generation still holds the weights"
        time.sleep(0.01)


def test_a_sync_past_its_deadline_is_named_and_the_policy_keeps_its_version(policy, tmp_path):
    server, client = policy
    core = server.server.core
    model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random")).float()
    engine = ZeroStage0Engine(model)
    publisher = WeightPublisher(WeightSyncConfig(mode="stream", timeout_s=1.5, max_failures=2), server.address,
                                tmp_path / "weights", resolve_model("tiny-random"))
    old = client.info().policy_version
    learner = SimpleNamespace(publisher=publisher, models=SimpleNamespace(actor=engine), cfg=SimpleNamespace(sync=publisher.cfg),
                              state=SimpleNamespace(policy_version=old + 1), sync_failures=0)
    stream = _held_generation(client)
    try:
        started = time.monotonic()
        with pytest.raises(WeightSyncError) as caught:
            publisher.publish(engine, old + 1)
        waited = time.monotonic() - started
        assert 1.5 <= waited < 10, waited  # the deadline, not a hang
        message = str(caught.value)
        assert message.startswith(f"weight sync of version {old + 1} to {server.address} failed after")
        assert "DEADLINE_EXCEEDED" in message and message.endswith(f"the policy serves version {old}")
        # The pause ended with the update: nothing waits behind a writer that is gone.
        assert not core.gate.updating
        assert client.info().policy_version == old

        # The learner's step: the first failure is logged and counted, the next publish is
        # tried at the next step; `max_failures` (2) in a row stop the learner.
        metrics: dict[str, float] = {}
        assert Learner._publish(learner, metrics) is None
        assert (metrics["sync/failures"], learner.sync_failures) == (1.0, 1)
        learner.state.policy_version = old + 2
        with pytest.raises(WeightSyncError):
            Learner._publish(learner, metrics)
        assert learner.sync_failures == 2
    finally:
        _release(stream, core)
    reply = client.generate([PROMPT], max_tokens=4, temperature=1.0, ignore_eos=True, seed=3)
    assert reply.policy_version == old and len(reply.results[0].completions[0].token_ids) == 4

    # Once nothing holds the weights, the next sync goes through (versions may skip). The
    # cancelled generation may still occupy the HF backend's one thread for a while: the
    # deadline of this sync leaves room for that.
    publisher.close()
    publisher = learner.publisher = WeightPublisher(WeightSyncConfig(mode="stream", timeout_s=120), server.address,
                                                    tmp_path / "weights", resolve_model("tiny-random"))
    learner.sync_failures = 1
    metrics = {}
    assert Learner._publish(learner, metrics) == old + 2
    assert (metrics["sync/failures"], learner.sync_failures) == (0.0, 0)
    assert client.info().policy_version == old + 2
    publisher.close()

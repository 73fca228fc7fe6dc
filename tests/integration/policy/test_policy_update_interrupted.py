"""Weights updates whose caller goes away: the policy never ends up half updated.

Cut off while its tensors stream in, an update changes nothing (the old weights keep
serving under their version, which the next update may still take). Given up on while
the weights load, the load finishes under the write hold and its version counts: the
served weights are always exactly one version's. (An update given up on while in-flight
calls drain: tests/integration/learner/test_learner_sync_failures.py.)"""

from __future__ import annotations

import asyncio
import threading

import grpc
import pytest
from transformers import AutoModelForCausalLM

from outrider.models import resolve_model
from outrider.models.tensors import tensor_chunks
from outrider.proto.v1 import policy_pb2

PROMPT = [1, 4093, 198, 6004, 2, 198, 1, 520, 9531, 198]


def _state_dict():
    return AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random")).float().state_dict()


def test_an_update_cut_off_mid_stream_changes_nothing(server, client):
    old = client.info().policy_version
    state = _state_dict()
    chunks = list(tensor_chunks(state, chunk_bytes=16 * 1024))
    assert len(chunks) >= 4, "too few chunks to stop half way"
    release = threading.Event()

    def messages():
        yield policy_pb2.UpdateWeightsRequest(
            header=policy_pb2.WeightsHeader(version=old + 1, streamed_tensors=len(state))
        )
        for chunk in chunks[: len(chunks) // 2]:
            yield policy_pb2.UpdateWeightsRequest(chunk=chunk)
        release.wait(30)  # the sender stalls half way; its deadline passes

    with pytest.raises(grpc.RpcError) as caught:
        client.stub.UpdateWeights(messages(), timeout=1.5)
    release.set()
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert client.info().policy_version == old
    reply = client.generate([PROMPT], max_tokens=4, temperature=1.0, ignore_eos=True, seed=5)
    assert reply.policy_version == old
    assert len(reply.results[0].completions[0].token_ids) == 4
    # The version was not used up: a complete update still takes it.
    assert client.update_weights_from_state_dict(old + 1, state).version == old + 1
    assert client.info().policy_version == old + 1


def test_a_caller_that_gives_up_mid_load_gets_the_load_finished_and_counted(server, client, monkeypatch):
    core = server.server.core
    backend = core.backend
    original = backend.load_weights
    loading = threading.Event()

    async def slow_load(update):
        loading.set()
        await asyncio.sleep(2.0)  # a load slower than its caller's deadline (vLLM reloading a large model)
        return await original(update)

    monkeypatch.setattr(backend, "load_weights", slow_load)
    old = client.info().policy_version
    header = policy_pb2.WeightsHeader(version=old + 1, checkpoint_path=str(resolve_model("tiny-random")))
    with pytest.raises(grpc.RpcError) as caught:
        client.stub.UpdateWeights(iter([policy_pb2.UpdateWeightsRequest(header=header)]), timeout=0.5)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert loading.is_set(), "the deadline passed before the load began; the test proves nothing"
    # A call arriving now waits for the load, then runs on the new, complete weights; cut
    # short, the load would have left the model half replaced and refusing every call.
    reply = client.generate([PROMPT], max_tokens=3, temperature=1.0, ignore_eos=True, seed=6)
    assert reply.policy_version == old + 1
    assert len(reply.results[0].completions[0].token_ids) == 3
    assert core.unavailable_reason is None
    assert client.info().policy_version == old + 1


def test_weights_that_fail_to_read_are_not_applied_and_the_old_version_serves(server, client, tmp_path, monkeypatch):
    if server.server.core.backend.name != "hf":
        pytest.skip("vLLM reads the files inside its engine process, where no read error can be injected")
    import errno

    from outrider.services.policy import hf_backend
    from outrider.services.policy.weights import read_checkpoint

    old = client.info().policy_version
    folder = tmp_path / "step-1"
    AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random")).float().save_pretrained(folder)
    calls = []

    def failing_read(path):
        # A disk that fails half way through the data: the header checks have passed (the
        # schema is right), the bytes cannot be read. The real reader runs first.
        calls.append(read_checkpoint(path))
        raise OSError(errno.EIO, "Input/output error", str(path))

    monkeypatch.setattr(hf_backend, "read_checkpoint", failing_read)
    before = list(client.score_tokens([(PROMPT, 1)]).sequences[0].logprobs)
    with pytest.raises(grpc.RpcError) as refused:
        client.update_weights_from_path(old + 1, folder)
    assert calls, "the load was reached (past the schema check)"
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
    assert "not applied" in refused.value.details() and f"version {old} still serves" in refused.value.details()
    # Still serving (not UNAVAILABLE), the same version and the same weights.
    assert client.info().policy_version == old
    after = client.score_tokens([(PROMPT, 1)])
    assert after.policy_version == old and list(after.sequences[0].logprobs) == before
    # The version was not used up.
    monkeypatch.setattr(hf_backend, "read_checkpoint", read_checkpoint)
    assert client.update_weights_from_path(old + 1, folder).version == old + 1

"""UpdateWeights: after a swap, generation and ScoreTokens follow the new weights and agree
with a plain HF forward pass on those weights (both backends, both update routes)."""

from __future__ import annotations

import grpc
import pytest

from outrider.models import resolve_model
from outrider.services.policy.weights import read_checkpoint
from testkit.policy import hf_logprobs, max_abs_diff, perturbed_checkpoint

PROMPTS = [[1, 4093, 198, 6004, 2, 198, 1, 520, 9531, 198], [6403, 1980, 253, 655]]
LOGPROB_TOL = 1e-4


def greedy(client):
    reply = client.generate(PROMPTS, temperature=0.0, max_tokens=16, ignore_eos=True)
    return reply, [(list(r.prompt_ids) + list(r.completions[0].token_ids), len(r.prompt_ids)) for r in reply.results]


def test_updates_from_checkpoint_and_streamed_tensors(client, tmp_path, record_property):
    original_dir = resolve_model("tiny-random")
    version = client.info().policy_version
    before, sequences = greedy(client)
    before_scores = [list(s.logprobs) for s in client.score_tokens(sequences).sequences]

    perturbed_dir = tmp_path / "perturbed"
    perturbed_checkpoint(original_dir, perturbed_dir, scale=0.05)
    reply = client.update_weights_from_path(version + 1, perturbed_dir)
    assert (reply.previous_version, reply.version) == (version, version + 1)
    assert client.info().policy_version == version + 1

    scored = client.score_tokens(sequences)
    assert scored.policy_version == version + 1
    new_scores = [list(s.logprobs) for s in scored.sequences]
    reference = hf_logprobs(perturbed_dir, sequences)
    diff = max_abs_diff(new_scores, reference)
    record_property("score_vs_hf_after_update", diff)
    assert diff <= LOGPROB_TOL
    assert max_abs_diff(new_scores, before_scores) > 0.1  # the weights really changed

    after, after_sequences = greedy(client)
    assert after.policy_version == version + 1
    assert [s for s, _ in after_sequences] != [s for s, _ in sequences]
    sampled = [list(r.completions[0].logprobs) for r in after.results]
    assert max_abs_diff(sampled, hf_logprobs(perturbed_dir, after_sequences)) <= LOGPROB_TOL

    # Back to the original weights by streaming them; a tied model's state_dict also lists
    # lm_head.weight, which the service accepts and drops.
    state = read_checkpoint(original_dir)
    state["lm_head.weight"] = state["model.embed_tokens.weight"]
    reply = client.update_weights_from_state_dict(version + 2, state, chunk_bytes=1 << 20)
    assert reply.version == version + 2
    restored, restored_sequences = greedy(client)
    assert restored_sequences == sequences
    assert restored.policy_version == version + 2
    assert max_abs_diff([list(s.logprobs) for s in client.score_tokens(sequences).sequences], before_scores) <= LOGPROB_TOL


def test_a_stale_update_changes_nothing(client, tmp_path):
    version = client.info().policy_version
    perturbed_dir = tmp_path / "perturbed"
    perturbed_checkpoint(resolve_model("tiny-random"), perturbed_dir, scale=0.05, seed=2)
    before = client.score_tokens([(PROMPTS[0], 1)]).sequences[0].logprobs
    with pytest.raises(grpc.RpcError) as failure:
        client.update_weights_from_path(version, perturbed_dir)
    assert failure.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert client.score_tokens([(PROMPTS[0], 1)]).sequences[0].logprobs == before

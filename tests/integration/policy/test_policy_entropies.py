"""ScoreTokens(return_entropies) and the base-model scoring of `outrider eval`, against a
direct transformers forward pass of the same weights (the independent oracle).

The reference entropy is H = −Σ_v p_v log p_v over the whole vocabulary, from a float32
forward pass taken to float64 here; both backends serve float32 (testkit.policy), so they
agree to ~1e-5 and the bound 1e-4 leaves room only for float32 reduction order.
"""

from __future__ import annotations

import math

import grpc
import pytest
import torch

from outrider.eval.scoring import score_solutions
from outrider.models import resolve_model
from outrider.proto.v1 import policy_pb2, trajectory_pb2

ENTROPY_TOL = 1e-4
SEQUENCES = [
    ([1, 4093, 198, 6004, 2, 77, 900, 31, 17, 4400], 2),
    ([1, 330, 4512, 314, 2476, 28], 5),
    ([5, 6], 1),
]


@pytest.fixture(scope="module")
def reference():
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random"), dtype=torch.float32).eval()


def _log_softmax(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), -1)


def test_entropies_equal_a_direct_full_vocabulary_forward(client, reference):
    with_entropies = client.score_tokens(SEQUENCES, entropies=True).sequences
    plain = client.score_tokens(SEQUENCES).sequences
    for (ids, start), scored, alone in zip(SEQUENCES, with_entropies, plain):
        logprobs = _log_softmax(reference, ids)
        # Position i - 1 holds the distribution of token i.
        expected = [float(-(logprobs[i - 1].exp() * logprobs[i - 1]).sum()) for i in range(start, len(ids))]
        assert len(scored.entropies) == len(scored.logprobs) == len(ids) - start
        assert max(abs(a - b) for a, b in zip(scored.entropies, expected)) < ENTROPY_TOL
        # Asking for entropies does not change the log-probabilities, and without the flag none come back.
        assert list(scored.logprobs) == pytest.approx(list(alone.logprobs), abs=1e-5)
        assert list(alone.entropies) == []
    # A random 2-layer model over 49k tokens is far from certain, yet below the uniform bound log V.
    assert all(0.5 < h < math.log(49152) for s in with_entropies for h in s.entropies)


def test_bad_entropy_requests_name_the_field(client):
    request = policy_pb2.ScoreTokensRequest(
        sequences=[policy_pb2.ScoreSequence(token_ids=[1, 2, 3], prompt_length=0)], return_entropies=True
    )
    with pytest.raises(grpc.RpcError) as failure:
        client.stub.ScoreTokens(request, timeout=60)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "sequences[0].prompt_length" in failure.value.details()


def test_solution_perplexity_under_the_base_equals_exp_of_minus_the_mean_logprob(client, reference):
    # A two-turn solution: prompt, completion, the environment's reply (context, not scored),
    # a second completion, as outrider.rollout.evaluation stores it.
    ids = [1, 4093, 198, 6004, 2, 77, 900, 31, 17, 4400, 2, 1, 330, 4512, 314, 2476, 28, 2]
    turns = [trajectory_pb2.Turn(start=4, completion_length=4), trajectory_pb2.Turn(start=13, completion_length=5)]
    solution = trajectory_pb2.Trajectory(prompt_length=4, token_ids=ids, turns=turns, solved=True)
    [scored] = score_solutions(client, [solution])
    logprobs = _log_softmax(reference, ids)
    completion = [*range(4, 8), *range(13, 18)]
    mean = sum(float(logprobs[i - 1, ids[i]]) for i in completion) / len(completion)
    assert scored.tokens == len(completion) == 9
    assert math.exp(-scored.base_logprob_sum / scored.tokens) == pytest.approx(math.exp(-mean), rel=1e-5)


def test_vllm_bounds_the_length_of_entropy_requests_and_says_so(client, server):
    info = client.info()
    long = ([1] + [(7 * i) % 40000 + 3 for i in range(299)], 1)
    if server.cfg.backend == "hf":
        # The HF backend's entropies come from its ordinary forward pass: no limit of their own.
        assert info.max_entropy_tokens == 0
        assert len(client.score_tokens([long], entropies=True).sequences[0].entropies) == 299
        return
    assert info.max_entropy_tokens == server.cfg.vllm.max_entropy_tokens == 256
    request = policy_pb2.ScoreTokensRequest(
        sequences=[policy_pb2.ScoreSequence(token_ids=long[0], prompt_length=1)], return_entropies=True
    )
    with pytest.raises(grpc.RpcError) as failure:
        client.stub.ScoreTokens(request, timeout=60)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "sequences[0].token_ids: 300 tokens exceed 256" in failure.value.details()
    assert "vllm.max_entropy_tokens" in failure.value.details()
    # Without entropies the same sequence is an ordinary request.
    assert len(client.score_tokens([long]).sequences[0].logprobs) == 299

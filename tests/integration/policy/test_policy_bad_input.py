"""Bad input gets a clear gRPC status naming the problem, and the server keeps serving."""

from __future__ import annotations

import grpc
import pytest

from outrider.proto.v1 import common_pb2, policy_pb2

OK_PROMPT = policy_pb2.Prompt(token_ids=common_pb2.TokenIds(ids=[1, 4093, 198]))


def ids(values):
    return policy_pb2.Prompt(token_ids=common_pb2.TokenIds(ids=values))


def generate(prompts=(OK_PROMPT,), model="", **sampling):
    params = policy_pb2.SamplingParams(max_tokens=2)
    for name, value in sampling.items():
        if isinstance(value, list):
            getattr(params, name).extend(value)
        else:
            setattr(params, name, value)
    return policy_pb2.GenerateRequest(prompts=list(prompts), sampling=params, model=model)


CASES = {
    # name: (request, status, words the message must contain)
    "empty token prompt": (generate([ids([])]), "INVALID_ARGUMENT", ["prompts[0]", "empty prompt"]),
    "empty text prompt": (generate([policy_pb2.Prompt(text="")]), "INVALID_ARGUMENT", ["prompts[0]", "empty prompt"]),
    "prompt without input": (generate([policy_pb2.Prompt()]), "INVALID_ARGUMENT", ["prompts[0]", "no input set"]),
    # 512 tokens fill the whole context (limits.max_context = 512): no room for a new one
    "prompt longer than context": (generate([ids([100] * 512)]), "INVALID_ARGUMENT", ["prompts[0]", "512 tokens", "context of 512"]),
    "token outside vocabulary": (generate([ids([1, 49152])]), "INVALID_ARGUMENT", ["prompts[0].token_ids[1]", "49152", "vocabulary"]),
    "negative temperature": (generate(temperature=-0.5), "INVALID_ARGUMENT", ["sampling.temperature", "-0.5"]),
    "top_p zero": (generate(top_p=0.0), "INVALID_ARGUMENT", ["sampling.top_p", "(0, 1]"]),
    "top_p above one": (generate(top_p=1.5), "INVALID_ARGUMENT", ["sampling.top_p", "1.5"]),
    "negative top_k": (generate(top_k=-2), "INVALID_ARGUMENT", ["sampling.top_k"]),
    "n over the limit": (generate(n=17), "INVALID_ARGUMENT", ["sampling.n", "17", "limits.max_n"]),
    "max_tokens over the limit": (generate(max_tokens=257), "INVALID_ARGUMENT", ["sampling.max_tokens", "257", "limits.max_tokens"]),
    "max_tokens zero": (generate(max_tokens=0), "INVALID_ARGUMENT", ["sampling.max_tokens", "at least 1"]),
    "too many prompts": (generate([OK_PROMPT] * 17), "INVALID_ARGUMENT", ["prompts", "17", "limits.max_prompts"]),
    "no prompts": (generate([]), "INVALID_ARGUMENT", ["prompts", "empty"]),
    "empty stop string": (generate(stop=[""]), "INVALID_ARGUMENT", ["sampling.stop[0]", "empty"]),
    "stop token outside vocabulary": (generate(stop_token_ids=[-1]), "INVALID_ARGUMENT", ["sampling.stop_token_ids[0]"]),
    "negative seed": (generate(seed=-3), "INVALID_ARGUMENT", ["sampling.seed", "-3"]),
    "unknown model": (generate(model="llama-9000"), "NOT_FOUND", ["llama-9000", "tiny-random"]),
    "unknown chat role": (
        generate([policy_pb2.Prompt(conversation=common_pb2.Conversation(messages=[common_pb2.ChatMessage(role="robot", content="x")]))]),
        "INVALID_ARGUMENT", ["prompts[0].conversation.messages[0].role", "robot"],
    ),
    "empty conversation": (
        generate([policy_pb2.Prompt(conversation=common_pb2.Conversation())]), "INVALID_ARGUMENT", ["messages: empty conversation"]
    ),
}


def assert_fails(call, status: str, words: list[str]) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        call()
    assert failure.value.code() == getattr(grpc.StatusCode, status), failure.value.details()
    for word in words:
        assert word in failure.value.details(), (word, failure.value.details())


def assert_still_serving(client) -> None:
    reply = client.generate([[1, 4093, 198]], temperature=0.0, max_tokens=3, ignore_eos=True)
    assert len(reply.results[0].completions[0].token_ids) == 3


@pytest.mark.parametrize("case", list(CASES))
def test_bad_generate_request(client, case):
    request, status, words = CASES[case]
    assert_fails(lambda: client.stub.Generate(request, timeout=60), status, words)
    assert_fails(lambda: list(client.stub.GenerateStream(request, timeout=60)), status, words)
    assert_still_serving(client)


@pytest.mark.parametrize(
    "sequence, words",
    [
        (policy_pb2.ScoreSequence(token_ids=[1, 2, 3], prompt_length=0), ["sequences[0].prompt_length", "at least 1"]),
        (policy_pb2.ScoreSequence(token_ids=[1, 2, 3], prompt_length=4), ["sequences[0].prompt_length", "exceeds"]),
        (policy_pb2.ScoreSequence(token_ids=[], prompt_length=1), ["sequences[0].token_ids", "empty"]),
        (policy_pb2.ScoreSequence(token_ids=[5] * 513, prompt_length=1), ["513 tokens", "context of 512"]),
        (policy_pb2.ScoreSequence(token_ids=[5, 99999], prompt_length=1), ["sequences[0].token_ids[1]", "vocabulary"]),
    ],
)
def test_bad_score_request(client, sequence, words):
    request = policy_pb2.ScoreTokensRequest(sequences=[sequence])
    assert_fails(lambda: client.stub.ScoreTokens(request, timeout=60), "INVALID_ARGUMENT", words)
    assert len(client.score_tokens([([1, 4093, 198], 1)]).sequences[0].logprobs) == 2


def test_stale_weights_version_is_refused(client):
    current = client.info().policy_version
    for stale in (current, max(current, 1) - 1):
        assert_fails(
            lambda: client.update_weights_from_path(stale, "/nonexistent"),
            "FAILED_PRECONDITION", [f"header.version: {stale}", f"served version {current}"],
        )
    assert client.info().policy_version == current
    assert_still_serving(client)


def test_bad_weights_updates_leave_the_model_untouched(client, tmp_path):
    import torch

    from outrider.models import resolve_model
    from outrider.services.policy.weights import read_checkpoint

    version = client.info().policy_version
    before = client.score_tokens([([1, 4093, 198, 6004, 2], 2)]).sequences[0].logprobs
    assert_fails(lambda: client.update_weights_from_path(version + 1, tmp_path / "missing"), "NOT_FOUND", ["missing"])
    state = read_checkpoint(resolve_model("tiny-random"))
    partial = {k: v for k, v in state.items() if "layers.1." not in k}
    assert_fails(lambda: client.update_weights_from_state_dict(version + 1, partial), "INVALID_ARGUMENT",
                 ["missing", "model.layers.1."])
    wrong = {**state, "model.norm.weight": torch.ones(7)}
    assert_fails(lambda: client.update_weights_from_state_dict(version + 1, wrong), "INVALID_ARGUMENT",
                 ["model.norm.weight has shape [7]", "[128]"])
    extra = {**state, "model.layers.9.mlp.up_proj.weight": torch.ones(2, 2)}
    assert_fails(lambda: client.update_weights_from_state_dict(version + 1, extra), "INVALID_ARGUMENT",
                 ["does not have", "model.layers.9.mlp.up_proj.weight"])
    assert client.info().policy_version == version
    assert client.score_tokens([([1, 4093, 198, 6004, 2], 2)]).sequences[0].logprobs == before

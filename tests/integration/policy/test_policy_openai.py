"""The OpenAI-compatible HTTP API, exercised with the official `openai` client."""

from __future__ import annotations

import openai
import pytest

PROMPT = [1, 4093, 198, 6004, 2, 198, 1, 520, 9531, 198]
CHAT = [{"role": "user", "content": "Name three colours."}]
LOGPROB_TOL = 1e-4


@pytest.fixture
def oai(server):
    return openai.OpenAI(base_url=server.http_url, api_key="x", max_retries=0, timeout=120)


def test_models_lists_the_served_model(oai):
    models = oai.models.list().data
    assert [m.id for m in models] == ["tiny-random"]
    assert models[0].model_extra["max_model_len"] == 512


def test_completion_matches_grpc(oai, client):
    grpc_c = client.generate([PROMPT], temperature=0.0, max_tokens=8).results[0].completions[0]
    reply = oai.completions.create(
        model="tiny-random", prompt=PROMPT, max_tokens=8, temperature=0, logprobs=0,
        extra_body={"return_token_ids": True},
    )
    choice = reply.choices[0]
    assert choice.text == grpc_c.text
    assert choice.model_extra["token_ids"] == list(grpc_c.token_ids)
    assert max(abs(a - b) for a, b in zip(choice.logprobs.token_logprobs, grpc_c.logprobs)) <= LOGPROB_TOL
    assert reply.usage.prompt_tokens == len(PROMPT) and reply.usage.completion_tokens == len(grpc_c.token_ids)
    assert reply.system_fingerprint == f"policy-v{client.info().policy_version}"


def test_completion_of_several_prompts_numbers_choices(oai):
    reply = oai.completions.create(model="tiny-random", prompt=["Hello", "Once upon"], n=2, max_tokens=5,
                                   temperature=1.0, seed=4, extra_body={"ignore_eos": True})
    assert [c.index for c in reply.choices] == [0, 1, 2, 3]
    assert reply.usage.completion_tokens == 4 * 5


def test_chat_completion_matches_grpc(oai, client):
    grpc_c = client.generate([CHAT], temperature=0.0, max_tokens=10).results[0].completions[0]
    reply = oai.chat.completions.create(model="tiny-random", messages=CHAT, max_tokens=10, temperature=0, logprobs=True)
    assert reply.choices[0].message.content == grpc_c.text
    assert reply.choices[0].message.role == "assistant"
    lps = [item.logprob for item in reply.choices[0].logprobs.content]
    assert max(abs(a - b) for a, b in zip(lps, grpc_c.logprobs)) <= LOGPROB_TOL


def test_chat_streaming_concatenates_to_the_full_reply(oai):
    full = oai.chat.completions.create(model="tiny-random", messages=CHAT, max_tokens=12, temperature=1.0, seed=9,
                                       n=2, extra_body={"ignore_eos": True})
    parts: dict[int, str] = {0: "", 1: ""}
    finish: dict[int, str] = {}
    for chunk in oai.chat.completions.create(model="tiny-random", messages=CHAT, max_tokens=12, temperature=1.0,
                                             seed=9, n=2, stream=True, extra_body={"ignore_eos": True}):
        for choice in chunk.choices:
            parts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finish[choice.index] = choice.finish_reason
    assert parts == {c.index: c.message.content for c in full.choices}
    assert finish == {0: "length", 1: "length"}


def test_completion_streaming(oai):
    full = oai.completions.create(model="tiny-random", prompt="Hello", max_tokens=6, temperature=0)
    streamed = "".join(c.choices[0].text for c in oai.completions.create(
        model="tiny-random", prompt="Hello", max_tokens=6, temperature=0, stream=True))
    assert streamed == full.choices[0].text


def test_http_errors_name_the_problem(oai):
    with pytest.raises(openai.NotFoundError) as failure:
        oai.completions.create(model="gpt-5", prompt="x", max_tokens=2)
    assert "gpt-5" in str(failure.value)
    with pytest.raises(openai.BadRequestError) as failure:
        oai.completions.create(model="tiny-random", prompt="x", max_tokens=2, temperature=-1)
    assert "temperature" in str(failure.value)
    with pytest.raises(openai.BadRequestError) as failure:
        oai.chat.completions.create(model="tiny-random", messages=CHAT, max_tokens=100000)
    assert "max_tokens" in str(failure.value) and "limits.max_tokens" in str(failure.value)
    with pytest.raises(openai.BadRequestError) as failure:
        oai.chat.completions.create(model="tiny-random", messages=[], max_tokens=2)
    assert "messages" in str(failure.value)
    with pytest.raises(openai.BadRequestError) as failure:
        oai.completions.create(model="tiny-random", prompt="x" * 4000, max_tokens=2)
    assert "context of 512" in str(failure.value)
    assert oai.completions.create(model="tiny-random", prompt="ok", max_tokens=2).choices[0].finish_reason

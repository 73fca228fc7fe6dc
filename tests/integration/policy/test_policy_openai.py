"""The OpenAI-compatible HTTP API, exercised with the official `openai` client."""

from __future__ import annotations

import httpx
import openai
import pytest
import torch

from outrider.models import resolve_model

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


def reference_top(ids: list[int], start: int, k: int) -> list[list[tuple[str, float]]]:
    """Independently: a plain transformers forward pass of tiny-random (float32), log-softmax,
    and the k + 5 most likely tokens (as text) at each position from `start` on."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = str(resolve_model("tiny-random"))
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    values, indices = logprobs[start - 1 : len(ids) - 1].topk(k + 5, dim=-1)
    return [[(tokenizer.decode([t]), v) for t, v in zip(row_i, row_v)] for row_i, row_v in zip(indices.tolist(), values.tolist())]


def assert_top(returned: list[tuple[str, float]], reference: list[tuple[str, float]], k: int) -> None:
    """`returned` is the top k of the reference distribution, most likely first (ties within
    the tolerance may come in either order)."""
    values = [v for _, v in returned]
    assert values == sorted(values, reverse=True)
    assert len(returned) == k
    for piece, value in returned:
        assert any(piece == p and abs(value - v) <= LOGPROB_TOL for p, v in reference), (piece, value)
    assert values[-1] >= reference[k - 1][1] - LOGPROB_TOL  # nothing better was left out


def test_chat_top_logprobs_are_the_most_likely_tokens(oai):
    reply = oai.chat.completions.create(model="tiny-random", messages=CHAT, max_tokens=6, temperature=0,
                                        logprobs=True, top_logprobs=5, extra_body={"return_token_ids": True})
    choice = reply.choices[0]
    prompt, tokens = choice.model_extra["prompt_token_ids"], choice.model_extra["token_ids"]
    reference = reference_top(prompt + tokens, len(prompt), 5)
    assert len(choice.logprobs.content) == len(tokens) == len(reference)
    for item, ref in zip(choice.logprobs.content, reference):
        assert_top([(t.token, t.logprob) for t in item.top_logprobs], ref, 5)
        # Greedy: the sampled token is the most likely one.
        assert item.top_logprobs[0].token == item.token and abs(item.top_logprobs[0].logprob - item.logprob) <= 1e-6
        assert item.top_logprobs[0].bytes == list(item.token.encode())


def test_completion_logprobs_n_are_the_most_likely_tokens(oai):
    reply = oai.completions.create(model="tiny-random", prompt=PROMPT, max_tokens=8, temperature=1.0, seed=3,
                                   logprobs=3, extra_body={"return_token_ids": True})
    choice = reply.choices[0]
    tokens = choice.model_extra["token_ids"]
    reference = reference_top(PROMPT + tokens, len(PROMPT), 3)
    for position, (piece, logprob, top) in enumerate(zip(choice.logprobs.tokens, choice.logprobs.token_logprobs,
                                                          choice.logprobs.top_logprobs)):
        assert_top(list(top.items()), reference[position], 3)
        if piece in top:  # sampled at temperature 1: not always among the best 3
            assert abs(top[piece] - logprob) <= 1e-6


def test_top_logprobs_stream_like_the_full_reply(oai):
    full = oai.chat.completions.create(model="tiny-random", messages=CHAT, max_tokens=6, temperature=0,
                                       logprobs=True, top_logprobs=2)
    streamed = []
    for chunk in oai.chat.completions.create(model="tiny-random", messages=CHAT, max_tokens=6, temperature=0,
                                             logprobs=True, top_logprobs=2, stream=True):
        if chunk.choices and chunk.choices[0].logprobs:
            streamed += chunk.choices[0].logprobs.content
    assert [[(t.token, round(t.logprob, 4)) for t in i.top_logprobs] for i in streamed] == \
           [[(t.token, round(t.logprob, 4)) for t in i.top_logprobs] for i in full.choices[0].logprobs.content]


def test_without_top_logprobs_none_are_listed(oai):
    reply = oai.chat.completions.create(model="tiny-random", messages=CHAT, max_tokens=3, temperature=0, logprobs=True)
    assert all(item.top_logprobs == [] for item in reply.choices[0].logprobs.content)
    reply = oai.completions.create(model="tiny-random", prompt="Hi", max_tokens=3, temperature=0, logprobs=0)
    assert reply.choices[0].logprobs.top_logprobs is None


def test_stream_usage_comes_last_when_asked_for(oai):
    chunks = list(oai.chat.completions.create(model="tiny-random", messages=CHAT, max_tokens=5, temperature=1.0,
                                              seed=1, n=2, stream=True, stream_options={"include_usage": True},
                                              extra_body={"ignore_eos": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 2 * 5
    assert all(c.usage is None for c in chunks[:-1])


def test_health_and_model_details(oai, server, client):
    health = httpx.get(server.http_url.removesuffix("/v1") + "/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "model": "tiny-random", "backend": client.info().backend,
                             "policy_version": client.info().policy_version, "in_flight": 0}
    card = oai.models.retrieve("tiny-random")
    assert (card.id, card.object, card.owned_by) == ("tiny-random", "model", "outrider") and card.created > 0
    assert card.model_extra["policy_version"] == client.info().policy_version
    assert card.model_extra["tool_call_format"] is None  # SmolLM2's template has no tools
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("gpt-5")


def test_error_bodies_have_openais_shape(server):
    url = server.http_url
    cases = [
        ("/chat/completions", {"model": "tiny-random", "messages": CHAT, "n": "many"}, 400, "n"),
        ("/chat/completions", {"model": "tiny-random", "messages": CHAT, "logprobs": True, "top_logprobs": 21}, 400,
         "top_logprobs"),
        ("/chat/completions", {"model": "tiny-random", "messages": CHAT, "top_logprobs": 2}, 400, "top_logprobs"),
        ("/completions", {"model": "tiny-random", "prompt": "x", "logprobs": 21}, 400, "logprobs"),
        ("/completions", {"model": "tiny-random", "prompt": "x", "temperature": -1}, 400, "temperature"),
        ("/completions", {"model": "tiny-random", "prompt": "x", "logit_bias": {"5": 10}}, 400, "logit_bias"),
        ("/completions", {"model": "tiny-random", "prompt": "x", "suffix": "y"}, 400, "suffix"),
        ("/chat/completions", {"model": "tiny-random", "messages": [{"role": "robot", "content": "x"}]}, 400,
         "messages[0].role"),
        ("/completions", {"model": "gpt-5", "prompt": "x"}, 404, "model"),
        ("/nowhere", {}, 404, None),
    ]
    for path, body, status, param in cases:
        reply = httpx.post(url + path, json=body)
        assert reply.status_code == status, (path, body, reply.text)
        error = reply.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["param"] == param, (body, error)
        assert error["type"] == ("invalid_request_error" if status == 400 else "not_found_error")


def test_response_format_other_than_text_is_refused(oai):
    assert oai.chat.completions.create(model="tiny-random", messages=CHAT, max_tokens=2,
                                       response_format={"type": "text"}).choices[0].message.content is not None
    for fmt in ({"type": "json_object"},
                {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}):
        with pytest.raises(openai.BadRequestError) as failure:
            oai.chat.completions.create(model="tiny-random", messages=CHAT, max_tokens=2, response_format=fmt)
        assert failure.value.param == "response_format"


def test_tools_are_refused_where_the_template_has_none(oai):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    with pytest.raises(openai.BadRequestError) as failure:
        oai.chat.completions.create(model="tiny-random", messages=CHAT, max_tokens=2, tools=tools)
    assert failure.value.param == "tools" and "does not render tools" in failure.value.message
    # tool_choice "none": the tools are not rendered, so nothing is lost by not having a template for them.
    plain = oai.chat.completions.create(model="tiny-random", messages=CHAT, max_tokens=2, temperature=0,
                                        extra_body={"return_token_ids": True})
    unused = oai.chat.completions.create(model="tiny-random", messages=CHAT, max_tokens=2, temperature=0, tools=tools,
                                         tool_choice="none", extra_body={"return_token_ids": True})
    assert unused.choices[0].model_extra["prompt_token_ids"] == plain.choices[0].model_extra["prompt_token_ids"]
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    with pytest.raises(openai.BadRequestError) as failure:
        oai.chat.completions.create(model="tiny-random", max_tokens=2,
                                    messages=[*CHAT, {"role": "assistant", "tool_calls": [call]}])
    assert failure.value.param == "messages[1].tool_calls"


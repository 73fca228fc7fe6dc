"""OpenAI function calling through the policy service, with the official `openai` client.

The served model is tiny-random with Qwen2.5's chat template (tools in a system
block, calls as `<tool_call>` JSON: the `hermes` format) and weights trained
here until greedy decoding of one conversation writes one known tool call. So
the reply is the model's own sampled tokens, rendered by the real template and
parsed by the server; the expected call is the one written below by hand.
"""

from __future__ import annotations

import json

import openai
import pytest
from transformers import AutoTokenizer

from testkit.tool_model import ASK, CALL, MODEL, REPLY, TOOLS


@pytest.fixture
def oai(tool_server):
    return openai.OpenAI(base_url=tool_server.http_url, api_key="x", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def tokenizer(tool_model):
    return AutoTokenizer.from_pretrained(str(tool_model))


def reference_ids(tokenizer, messages, tools=None) -> list[int]:
    """The prompt rendered independently: transformers' own apply_chat_template."""
    text = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_the_models_card_names_the_tool_call_format(oai):
    assert oai.models.retrieve(MODEL).model_extra["tool_call_format"] == "hermes"


def test_a_tool_call_comes_back_as_tool_calls(oai, tokenizer):
    reply = oai.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, temperature=0, max_tokens=64,
                                        extra_body={"return_token_ids": True})
    choice = reply.choices[0]
    assert choice.model_extra["prompt_token_ids"] == reference_ids(tokenizer, ASK, TOOLS)
    assert tokenizer.decode(choice.model_extra["token_ids"], skip_special_tokens=True) == REPLY
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert (call.function.name, json.loads(call.function.arguments)) == CALL


def test_a_streamed_tool_call_arrives_whole_at_the_end(oai):
    content, calls, finish = "", [], None
    for chunk in oai.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, temperature=0, max_tokens=64,
                                             stream=True):
        delta = chunk.choices[0].delta
        content += delta.content or ""
        calls += delta.tool_calls or []
        finish = chunk.choices[0].finish_reason or finish
    assert content == ""  # the held-back <tool_call> text never leaks as content
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [CALL]
    assert finish == "tool_calls"


def test_tool_results_and_earlier_calls_are_rendered(oai, tokenizer):
    arguments = json.dumps(CALL[1])
    messages = [*ASK,
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": CALL[0], "arguments": arguments}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"}]
    reply = oai.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, temperature=0, max_tokens=4,
                                        extra_body={"return_token_ids": True})
    # HF templates take arguments as an object (OpenAI sends JSON text); content None as "".
    expected = [*ASK,
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": CALL[0], "arguments": CALL[1]}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"}]
    ids = reply.choices[0].model_extra["prompt_token_ids"]
    assert ids == reference_ids(tokenizer, expected, TOOLS)
    text = tokenizer.decode(ids)
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in text
    assert "<tool_response>\n18 C, sunny\n</tool_response>" in text


def test_tool_choice_none_renders_no_tools_and_parses_nothing(oai, tokenizer):
    reply = oai.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, tool_choice="none", temperature=0,
                                        max_tokens=8, extra_body={"return_token_ids": True})
    choice = reply.choices[0]
    assert choice.model_extra["prompt_token_ids"] == reference_ids(tokenizer, ASK)
    assert choice.message.tool_calls is None and isinstance(choice.message.content, str)


def test_unsupported_tool_requests_are_refused_naming_the_field(oai):
    cases = [
        ({"tools": TOOLS, "tool_choice": "required"}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}, "tool_choice"),
        ({"tools": TOOLS, "parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"functions": [TOOLS[0]["function"]]}, "functions"),
    ]
    for extra, field in cases:
        with pytest.raises(openai.BadRequestError) as failure:
            oai.chat.completions.create(model=MODEL, messages=ASK, max_tokens=2, **extra)
        assert failure.value.body["param"] == field, (extra, failure.value.body)
    bad_arguments = [*ASK, {"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": "{city: Paris"}}]}]
    with pytest.raises(openai.BadRequestError) as failure:
        oai.chat.completions.create(model=MODEL, messages=bad_arguments, tools=TOOLS, max_tokens=2)
    assert failure.value.body["param"] == "messages[1].tool_calls[0].function.arguments"

"""Tool-call formats: hand-written completions, the calls they mean, and streaming hold-back."""

from __future__ import annotations

import json

from outrider.services.policy.tool_calls import (
    FORMATS,
    ParsedCall,
    StreamingToolFilter,
    detect_format,
    parse_hermes,
    parse_llama3_json,
    supports_tools,
)

WEATHER = ParsedCall("get_weather", json.dumps({"city": "Paris"}))


def test_hermes_single_call_has_no_content():
    reply = parse_hermes('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>')
    assert reply.content is None and reply.calls == (WEATHER,)


def test_hermes_text_before_calls_is_the_content_and_calls_keep_their_order():
    text = ('Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
            '<tool_call>\n{"name": "get_time", "arguments": {"zone": "CET", "24h": true}}\n</tool_call>')
    reply = parse_hermes(text)
    assert reply.content == "Let me check."
    assert reply.calls == (WEATHER, ParsedCall("get_time", '{"zone": "CET", "24h": true}'))


def test_hermes_arguments_given_as_json_text_and_a_missing_close_tag():
    reply = parse_hermes('<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}')
    assert reply.calls == (WEATHER,)


def test_hermes_malformed_blocks_are_content_not_calls():
    for text in ['<tool_call>\n{"name": "get_weather", "arguments": {"city": }\n</tool_call>',
                 '<tool_call>\n{"arguments": {}}\n</tool_call>',
                 '<tool_call>\n{"name": "f", "arguments": [1, 2]}\n</tool_call>',
                 "no call at all"]:
        reply = parse_hermes(text)
        assert reply == type(reply)(text, ()), text


def test_llama3_json_calls():
    assert parse_llama3_json('{"name": "get_weather", "parameters": {"city": "Paris"}}').calls == (WEATHER,)
    two = parse_llama3_json('<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}; '
                            '{"name": "noop", "parameters": {}}')
    assert two.content is None and two.calls == (WEATHER, ParsedCall("noop", "{}"))
    for text in ["The weather is fine.", '{"name": "f", "parameters": {}} and then text', '{"city": "Paris"}']:
        assert parse_llama3_json(text).calls == (), text


def test_formats_are_recognised_from_the_template_text():
    hermes = "{%- if tools %}<tools>{{ tool | tojson }}</tools> ... <tool_call></tool_call>{%- endif %}"
    llama = "{%- if tools is not none %}Environment: ipython{%- endif %} ... <|python_tag|>"
    smollm2 = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n'}}{% endfor %}"
    assert supports_tools(hermes) and detect_format(hermes) is FORMATS["hermes"]
    assert supports_tools(llama) and detect_format(llama) is FORMATS["llama3_json"]
    assert not supports_tools(smollm2) and detect_format(smollm2) is None


def stream(pieces: list[str], name: str) -> tuple[list[str], str, tuple[ParsedCall, ...]]:
    held = StreamingToolFilter(FORMATS[name])
    sent = [held.feed(piece) for piece in pieces]
    rest, calls = held.finish()
    return sent, rest, calls


def test_streamed_hermes_content_passes_and_a_call_is_held_whole():
    pieces = ["Sure", ". <", "tool", "_call>\n", '{"name": "get_weather", ', '"arguments": {"city": "Paris"}}', "\n</tool_call>"]
    sent, rest, calls = stream(pieces, "hermes")
    # "<" might begin "<tool_call>": held from the second piece on, never sent as content.
    assert sent == ["Sure", ". ", "", "", "", "", ""] and rest == "" and calls == (WEATHER,)


def test_streamed_text_that_only_looked_like_a_call_is_sent_at_the_end():
    sent, rest, calls = stream(["a <", "tool"], "hermes")
    assert sent == ["a ", ""] and rest == "<tool" and calls == ()
    sent, rest, calls = stream(["x < y", " and z"], "hermes")
    assert "".join(sent) + rest == "x < y and z" and calls == ()


def test_streamed_llama3_json_holds_a_reply_that_starts_like_json():
    sent, rest, calls = stream(['{"name": "get_weather", ', '"parameters": {"city": "Paris"}}'], "llama3_json")
    assert sent == ["", ""] and rest == "" and calls == (WEATHER,)
    sent, rest, calls = stream(["It is ", "sunny."], "llama3_json")
    assert sent == ["It is ", "sunny."] and rest == "" and calls == ()

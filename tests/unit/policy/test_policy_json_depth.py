"""JSON nested past Python's recursion limit is invalid JSON like any other (outrider.proto.jsontext),
in every parser of client or model text: a request's tool-call arguments, a model's tool calls,
an environment's tool call, a code task's reference. Plain `json.loads` raises RecursionError
there, which the services answered with INTERNAL (or a 500, or an environment error)."""

from __future__ import annotations

import json

import pytest

from outrider.envs.tools import parse_tool_calls
from outrider.proto import jsontext
from outrider.serving import InvalidArgument
from outrider.services.policy.openai_schema import ChatMessage
from outrider.services.policy.tool_calls import parse_hermes, parse_llama3_json
from outrider.services.reward.verifiers.base import VerifierError
from outrider.services.reward.verifiers.code import parse_tests

DEEP_LIST = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT = '{"a": ' * 100_000 + "1" + "}" * 100_000


def test_plain_json_loads_recurses_so_the_guard_is_needed():
    with pytest.raises(RecursionError):
        json.loads(DEEP_LIST)


@pytest.mark.parametrize("text", [DEEP_LIST, DEEP_OBJECT, DEEP_LIST.encode()], ids=["list", "object", "bytes"])
def test_loads_turns_recursion_into_a_decode_error(text):
    with pytest.raises(json.JSONDecodeError) as info:
        jsontext.loads(text)
    assert (info.value.msg, info.value.pos, info.value.lineno, info.value.colno) == (jsontext.TOO_DEEP, 0, 1, 1)
    assert jsontext.loads("[[1], {\"a\": 2}]") == [[1], {"a": 2}]


def test_raw_decode_turns_recursion_into_a_decode_error():
    with pytest.raises(json.JSONDecodeError, match="nested too deeply"):
        jsontext.raw_decode("x" + DEEP_OBJECT, 1)
    assert jsontext.raw_decode('x{"a": 1} tail', 1) == ({"a": 1}, 9)


def test_request_tool_call_arguments_name_the_field():
    message = ChatMessage.model_validate({"role": "assistant", "content": "", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": DEEP_OBJECT}}]})
    with pytest.raises(InvalidArgument) as info:
        message.template_entry("messages[3]")
    assert info.value.message.startswith("messages[3].tool_calls[0].function.arguments: not valid JSON (nested too deeply to parse")


def test_a_model_writing_deep_tool_calls_gets_plain_text_back():
    text = f"<tool_call>{DEEP_OBJECT}</tool_call>"
    assert parse_hermes(text).content == text and parse_hermes(text).calls == ()
    assert parse_llama3_json(DEEP_OBJECT).calls == ()


def test_an_environment_tool_call_is_malformed():
    (call,) = parse_tool_calls(f"<tool_call>{DEEP_LIST}</tool_call>")
    assert call.error == "the call is not valid JSON (nested too deeply to parse at position 0)"


def test_a_code_reference_is_a_verifier_error():
    with pytest.raises(VerifierError, match=r"reference is not JSON \(nested too deeply to parse\)"):
        parse_tests(DEEP_LIST)

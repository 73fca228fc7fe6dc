"""The one tool-call format: well-formed calls parse, every malformed shape is reported, nothing raises."""

from __future__ import annotations

import json

import pytest

from outrider.envs.sandbox import LimitHit, RunResult
from outrider.envs.tools import (
    MAX_CALLS_PER_MESSAGE,
    PYTHON_TOOL,
    format_call,
    format_run_output,
    has_tool_call,
    parse_tool_calls,
    remove_tool_calls,
)


def test_no_tags_means_no_calls():
    assert parse_tool_calls("The answer is 42.") == []
    assert not has_tool_call("The answer is 42.")


def test_remove_tool_calls_leaves_the_prose():
    call = format_call("python", {"code": "print(99)"})
    assert remove_tool_calls(f"Let me see. {call} Then 7.") == "Let me see.   Then 7."  # the call becomes one space
    assert remove_tool_calls("a <tool_call>{unclosed print(99)") == "a  "  # unclosed: to the end
    assert remove_tool_calls(f"{call}{call}x") == "  x"
    assert remove_tool_calls("no calls") == "no calls"
    assert remove_tool_calls("<tool_call>" * 100_000) == " "  # linear: one unclosed call swallows the rest


def test_well_formed_call_round_trips():
    text = "Let me compute. " + format_call("python", {"code": "print(2 ** 10)"}) + " done"
    [call] = parse_tool_calls(text)
    assert call.ok
    assert call.name == "python"
    assert call.arguments == {"code": "print(2 ** 10)"}
    assert json.loads(call.arguments_json) == {"code": "print(2 ** 10)"}


def test_whitespace_and_newlines_inside_tags_are_fine():
    text = '<tool_call>\n  {"name": "python",\n   "arguments": {"code": "x = 1\\nprint(x)"}}\n</tool_call>'
    [call] = parse_tool_calls(text)
    assert call.ok and call.arguments["code"] == "x = 1\nprint(x)"


def test_several_calls_in_order():
    text = format_call("python", {"code": "print(1)"}) + "\n" + format_call("python", {"code": "print(2)"})
    calls = parse_tool_calls(text)
    assert [c.arguments["code"] for c in calls] == ["print(1)", "print(2)"]


@pytest.mark.parametrize(
    ("text", "error_part"),
    [
        ('<tool_call>{"name": "python", "arguments": {"code": "1"}</tool_call>', "not valid JSON"),
        ("<tool_call>[1, 2]</tool_call>", "must be a JSON object"),
        ('<tool_call>{"name": "python"}</tool_call>', "missing ['arguments']"),
        ('<tool_call>{"name": "python", "arguments": {}, "id": 3}</tool_call>', "unknown ['id']"),
        ('<tool_call>{"name": "", "arguments": {}}</tool_call>', "'name' must be a non-empty string"),
        ('<tool_call>{"name": 7, "arguments": {}}</tool_call>', "'name' must be a non-empty string"),
        ('<tool_call>{"name": "python", "arguments": "print(1)"}</tool_call>', "'arguments' must be a JSON object"),
        ('<tool_call>{"name": "python", "arguments": {"code": "1"}}', "is not closed"),
        ('{"name": "python", "arguments": {}}</tool_call>', "without <tool_call>"),
        ("<tool_call></tool_call>", "not valid JSON"),
    ],
)
def test_malformed_calls_carry_an_error(text, error_part):
    calls = parse_tool_calls(text)
    assert len(calls) == 1
    assert not calls[0].ok
    assert error_part in calls[0].error


def test_unclosed_tag_after_a_good_call_is_reported_separately():
    text = format_call("python", {"code": "print(1)"}) + ' then <tool_call>{"name": "python"'
    first, second = parse_tool_calls(text)
    assert first.ok
    assert not second.ok and "not closed" in second.error


def test_too_many_calls_mark_the_extra_ones():
    text = "".join(format_call("python", {"code": f"print({i})"}) for i in range(MAX_CALLS_PER_MESSAGE + 2))
    calls = parse_tool_calls(text)
    assert [c.ok for c in calls] == [True] * MAX_CALLS_PER_MESSAGE + [False, False]


def test_python_tool_schema_is_a_json_schema_object():
    schema = json.loads(PYTHON_TOOL.parameters_json_schema)
    assert schema["required"] == ["code"]
    assert schema["properties"]["code"]["type"] == "string"


def test_run_output_shows_stdout_stderr_and_the_limit():
    ok = RunResult("4\n", "", 0, 0.01, LimitHit.NONE, "bwrap")
    assert format_run_output(ok) == "4\n"
    failed = RunResult("", "Traceback ...\nZeroDivisionError\n", 1, 0.01, LimitHit.NONE, "bwrap")
    assert format_run_output(failed) == "stderr:\nTraceback ...\nZeroDivisionError\n\n(exit code 1)"
    stopped = RunResult("", "", -9, 10.0, LimitHit.WALL_TIME, "bwrap")
    assert format_run_output(stopped) == "(stopped: wall time limit reached)"
    long = RunResult("x" * 50, "", 0, 0.01, LimitHit.NONE, "bwrap")
    assert format_run_output(long, max_chars=10) == "x" * 10 + "\n... (40 more characters)"

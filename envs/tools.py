"""The one tool-call format of Outrider environments, its parser, and the python tool.

A tool call is a JSON object between tags, anywhere in the assistant message:

    <tool_call>{"name": "python", "arguments": {"code": "print(2 ** 100)"}}</tool_call>

* exactly the keys "name" (a string) and "arguments" (a JSON object);
* several calls in one message run in order (at most MAX_CALLS_PER_MESSAGE);
* the result comes back as a message with role "tool" and the tool's name.

Anything else between the tags (bad JSON, missing or extra keys, an unclosed
tag, an unknown tool) is a malformed call: the environment answers with an
error observation that explains this format, the call is recorded with status
INVALID_INPUT (and counted by the service), and the episode goes on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from outrider.envs.sandbox import LimitHit, RunResult
from outrider.proto import jsontext
from outrider.proto.v1 import env_pb2

OPEN_TAG = "<tool_call>"
CLOSE_TAG = "</tool_call>"
MAX_CALLS_PER_MESSAGE = 4
_TAG = re.compile(re.escape(OPEN_TAG) + r"(.*?)" + re.escape(CLOSE_TAG), re.DOTALL)

TOOL_CALL_INSTRUCTIONS = (
    "To call a tool, write exactly:\n"
    '<tool_call>{"name": "TOOL", "arguments": {...}}</tool_call>\n'
    "The result comes back in the next message."
)

PYTHON_TOOL = env_pb2.ToolSchema(
    name="python",
    description="Run a Python 3 program in a sandbox (no network, no files kept between calls) and see its stdout and stderr.",
    parameters_json_schema=json.dumps(
        {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "the program; print what you want to see"}},
            "required": ["code"],
            "additionalProperties": False,
        }
    ),
)


@dataclass(frozen=True)
class ParsedCall:
    """One call found in a message: name and arguments, or why it is malformed."""

    raw: str
    name: str = ""
    arguments: dict[str, Any] | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments) if self.arguments is not None else self.raw


def format_call(name: str, arguments: dict[str, Any]) -> str:
    """The text of a well-formed call (what a policy should write)."""
    return f"{OPEN_TAG}{json.dumps({'name': name, 'arguments': arguments})}{CLOSE_TAG}"


def has_tool_call(text: str) -> bool:
    return OPEN_TAG in text or CLOSE_TAG in text


def remove_tool_calls(text: str) -> str:
    """`text` with each call (`<tool_call>` to its `</tool_call>`, or to the end when
    unclosed) replaced by a space: what is left is prose, e.g. for reading an answer.
    Linear in len(text), however many tags are unclosed."""
    parts, position = [], 0
    while (start := text.find(OPEN_TAG, position)) != -1:
        parts.append(text[position:start] + " ")
        end = text.find(CLOSE_TAG, start + len(OPEN_TAG))
        position = len(text) if end == -1 else end + len(CLOSE_TAG)
    parts.append(text[position:])
    return "".join(parts)


def parse_tool_calls(text: str) -> list[ParsedCall]:
    """Every call in `text`, in order; malformed ones carry `error` (never raises)."""
    calls = []
    position = 0
    for match in _TAG.finditer(text):
        stray = text[position : match.start()]
        if OPEN_TAG in stray or CLOSE_TAG in stray:
            calls.append(ParsedCall(raw=stray.strip(), error="unbalanced <tool_call> tags"))
        calls.append(_parse_one(match.group(1)))
        position = match.end()
    rest = text[position:]
    if OPEN_TAG in rest:
        calls.append(ParsedCall(raw=rest[rest.index(OPEN_TAG) :].strip(), error="<tool_call> is not closed by </tool_call>"))
    elif CLOSE_TAG in rest:
        calls.append(ParsedCall(raw=rest.strip(), error="</tool_call> without <tool_call>"))
    if len(calls) > MAX_CALLS_PER_MESSAGE:
        extra = [ParsedCall(raw=c.raw, error=f"more than {MAX_CALLS_PER_MESSAGE} tool calls in one message") for c in calls[MAX_CALLS_PER_MESSAGE:]]
        calls = calls[:MAX_CALLS_PER_MESSAGE] + extra
    return calls


def _parse_one(body: str) -> ParsedCall:
    raw = body.strip()
    try:
        data = jsontext.loads(raw)
    except json.JSONDecodeError as exc:
        return ParsedCall(raw=raw, error=f"the call is not valid JSON ({exc.msg} at position {exc.pos})")
    if not isinstance(data, dict):
        return ParsedCall(raw=raw, error="the call must be a JSON object")
    keys = set(data)
    if keys != {"name", "arguments"}:
        missing, extra = {"name", "arguments"} - keys, keys - {"name", "arguments"}
        parts = [f"missing {sorted(missing)}" if missing else "", f"unknown {sorted(extra)}" if extra else ""]
        return ParsedCall(raw=raw, error="the call needs exactly the keys 'name' and 'arguments' (" + ", ".join(p for p in parts if p) + ")")
    if not isinstance(data["name"], str) or not data["name"]:
        return ParsedCall(raw=raw, error="'name' must be a non-empty string")
    if not isinstance(data["arguments"], dict):
        return ParsedCall(raw=raw, name=data["name"], error="'arguments' must be a JSON object")
    return ParsedCall(raw=raw, name=data["name"], arguments=data["arguments"])


def malformed_call_message(error: str) -> str:
    """The observation a policy gets for a malformed call."""
    return f"Tool call error: {error}.\n{TOOL_CALL_INSTRUCTIONS}"


def format_run_output(result: RunResult, max_chars: int = 2000) -> str:
    """A sandbox result as the python tool shows it to the policy."""
    parts = []
    if result.stdout:
        parts.append(_clip(result.stdout, max_chars))
    if result.stderr:
        parts.append("stderr:\n" + _clip(result.stderr, max_chars))
    if result.limit_hit is not LimitHit.NONE:
        parts.append(f"(stopped: {result.limit_hit.name.lower().replace('_', ' ')} limit reached)")
    elif result.exit_code != 0:
        parts.append(f"(exit code {result.exit_code})")
    return "\n".join(parts) if parts else "(no output)"


def _clip(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[:max_chars] + f"\n... ({len(text) - max_chars} more characters)"

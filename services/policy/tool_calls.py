"""Tool calls in completions: which format a model family writes, and parsing it back.

A chat template that supports tools renders the OpenAI `tools` into the prompt
and teaches the model one way of writing a call. Each family below names how
its template is recognised and how a completion's calls are read back into
OpenAI `tool_calls`. A template that renders tools in a format not listed here
is refused (HTTP 400 naming `tools`) rather than served with calls left unparsed.

* `hermes` — Qwen2.5, Qwen3, Hermes 2/3, SmolLM3 and other templates that write
  `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`, one block per call;
  text before the first block is the message content.
* `llama3_json` — Llama 3.1/3.2/3.3 (templates with `<|python_tag|>`): the whole reply
  is `{"name": ..., "parameters": {...}}` (or several separated by `;`).

A block whose JSON does not parse, or lacks a string `name`, is not a call: the
reply is returned as plain content, as the model wrote it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from outrider.proto import jsontext


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: str
    """JSON text of the arguments object, as OpenAI sends it."""


@dataclass(frozen=True)
class ParsedReply:
    content: str | None
    """Text outside the calls; None when there is none (OpenAI's `content: null`)."""
    calls: tuple[ParsedCall, ...]


@dataclass(frozen=True)
class ToolFormat:
    name: str
    detect: Callable[[str], bool]
    """True for a chat template (its Jinja text) that teaches this format."""
    parse: Callable[[str], ParsedReply]
    hold_from: Callable[[str], int]
    """Streaming: the index in the text so far from which it may still become a call, so it
    is held back (len(text) when nothing needs holding)."""


def _call(obj: object, arguments_key: str) -> ParsedCall | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    arguments = obj.get(arguments_key, obj.get("arguments", {}))
    if isinstance(arguments, str):  # some models write the arguments as a JSON string already
        try:
            arguments = jsontext.loads(arguments)
        except json.JSONDecodeError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ParsedCall(obj["name"], json.dumps(arguments, ensure_ascii=False))


HERMES_OPEN, HERMES_CLOSE = "<tool_call>", "</tool_call>"
_HERMES_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)


def parse_hermes(text: str) -> ParsedReply:
    start = text.find(HERMES_OPEN)
    if start < 0:
        return ParsedReply(text, ())
    calls = []
    for match in _HERMES_BLOCK.finditer(text, start):
        try:
            call = _call(jsontext.loads(match.group(1)), "arguments")
        except json.JSONDecodeError:
            call = None
        if call is None:
            return ParsedReply(text, ())
        calls.append(call)
    content = text[:start].strip()
    return ParsedReply(content or None, tuple(calls))


def _hold_hermes(text: str) -> int:
    start = text.find(HERMES_OPEN)
    if start >= 0:
        return start
    # A suffix that is the beginning of "<tool_call>" may still become one.
    for size in range(min(len(HERMES_OPEN) - 1, len(text)), 0, -1):
        if HERMES_OPEN.startswith(text[-size:]):
            return len(text) - size
    return len(text)


def parse_llama3_json(text: str) -> ParsedReply:
    body = text.strip().removeprefix("<|python_tag|>").strip()
    if not body.startswith("{"):
        return ParsedReply(text, ())
    calls, index = [], 0
    while index < len(body):
        try:
            obj, end = jsontext.raw_decode(body, index)
        except json.JSONDecodeError:
            return ParsedReply(text, ())
        call = _call(obj, "parameters")
        if call is None:
            return ParsedReply(text, ())
        calls.append(call)
        index = end
        while index < len(body) and body[index] in " \t\r\n;":
            index += 1
    return ParsedReply(None, tuple(calls))


def _hold_llama3(text: str) -> int:
    # The reply is a call only if it starts with "{": hold everything until that is decided.
    stripped = text.lstrip().removeprefix("<|python_tag|>").lstrip()
    return 0 if not stripped or stripped.startswith("{") or "<|python_tag|>".startswith(stripped) else len(text)


FORMATS: dict[str, ToolFormat] = {
    "hermes": ToolFormat("hermes", lambda template: HERMES_OPEN in template, parse_hermes, _hold_hermes),
    "llama3_json": ToolFormat("llama3_json", lambda template: "<|python_tag|>" in template, parse_llama3_json, _hold_llama3),
}


def supports_tools(template: str) -> bool:
    """Whether a chat template renders the `tools` it is given (HF templates read a `tools` variable)."""
    return re.search(r"\btools\b", template) is not None


def detect_format(template: str) -> ToolFormat | None:
    for tool_format in FORMATS.values():
        if tool_format.detect(template):
            return tool_format
    return None


class StreamingToolFilter:
    """One streamed choice: passes content through until it may be a call, holds the rest,
    and decides at the end whether the held text was calls or content."""

    def __init__(self, tool_format: ToolFormat):
        self.format = tool_format
        self.text = ""
        self.emitted = 0

    def feed(self, delta: str) -> str:
        """Content that can be sent now."""
        self.text += delta
        hold = max(self.emitted, self.format.hold_from(self.text))
        out, self.emitted = self.text[self.emitted : hold], hold
        return out

    def finish(self) -> tuple[str, tuple[ParsedCall, ...]]:
        """(content not sent yet, calls) once the completion has ended."""
        reply = self.format.parse(self.text)
        if not reply.calls:
            return self.text[self.emitted :], ()
        # Content is the text before the first call; what of it was not sent yet goes now.
        content = reply.content or ""
        sent = self.text[: self.emitted].strip()
        rest = content[len(sent) :] if content.startswith(sent) else ""
        return rest, reply.calls

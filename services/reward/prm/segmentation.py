"""Cutting a conversation into the steps a process reward model scores.

A step is a character span inside one assistant message: the whole message
(`turn` mode: one step per assistant turn), or each piece between occurrences
of a delimiter such as "\n\n" (`delimiter` mode: several reasoning steps per
turn). Spans exclude surrounding whitespace; whitespace-only pieces are not steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from outrider.proto.chat import Message

SegmentationMode = Literal["turn", "delimiter"]


@dataclass(frozen=True)
class StepSpan:
    """Step = messages[message_index].content[char_start:char_end]."""

    message_index: int
    char_start: int
    char_end: int


def _stripped_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def segment(messages: Sequence[Message], mode: SegmentationMode, delimiter: str = "\n\n") -> list[StepSpan]:
    """The steps of `messages`, in conversation order.

    `turn`: every non-blank assistant message is one step. `delimiter`: assistant
    messages are split at every occurrence of `delimiter` (which must be non-empty).
    """
    if mode not in ("turn", "delimiter"):
        raise ValueError(f"unknown segmentation mode {mode!r}; valid: turn, delimiter")
    if mode == "delimiter" and not delimiter:
        raise ValueError("delimiter segmentation needs a non-empty delimiter")
    steps: list[StepSpan] = []
    for index, message in enumerate(messages):
        if message.role != "assistant":
            continue
        text = message.content
        if mode == "turn":
            bounds = [(0, len(text))]
        else:
            bounds, start = [], 0
            while (found := text.find(delimiter, start)) != -1:
                bounds.append((start, found))
                start = found + len(delimiter)
            bounds.append((start, len(text)))
        for start, end in bounds:
            start, end = _stripped_span(text, start, end)
            if end > start:
                steps.append(StepSpan(index, start, end))
    return steps


def step_texts(messages: Sequence[Message], steps: Sequence[StepSpan]) -> list[str]:
    """The text of each step."""
    return [messages[s.message_index].content[s.char_start : s.char_end] for s in steps]

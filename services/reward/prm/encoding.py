"""Token sequences a process reward model reads, and where it reads them.

A conversation becomes one token sequence: every message before a step is
context ("role: content\n"); each step is followed by a fixed separator, and
the score of step t is read at the separator's last token. With a causal
(decoder-only) model the output there depends only on the prefix up to step t,
so one forward pass scores every step of a trajectory, and the result equals
scoring each prefix on its own (tests check this).

Pieces are tokenized separately and concatenated, so the tokens of the prefix
ending at step t are exactly `ids[: ends[t] + 1]`: training, serving and a
direct model call all see the same tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from outrider.proto.chat import Message
from outrider.services.reward.prm.segmentation import StepSpan

DEFAULT_SEPARATOR = "\n"
ASSISTANT_HEADER = "assistant: "


@dataclass(frozen=True)
class EncodedSteps:
    """Token ids of a trajectory and, per step, the index of the token whose output scores it."""

    ids: list[int]
    ends: list[int]


def context_line(message: Message) -> str:
    return f"{message.role}: {message.content}\n"


def pieces(messages: Sequence[Message], steps: Sequence[StepSpan], separator: str) -> tuple[list[str], list[int]]:
    """Text pieces in order, and the index of each step's separator piece.

    Messages after the last step are dropped: a causal model's step scores
    cannot depend on them.
    """
    by_message: dict[int, list[StepSpan]] = {}
    for step in steps:
        by_message.setdefault(step.message_index, []).append(step)
    last = max(by_message) if by_message else -1
    texts: list[str] = []
    step_pieces: list[int] = []
    for index, message in enumerate(messages[: last + 1]):
        spans = by_message.get(index)
        if not spans:
            texts.append(context_line(message))
            continue
        texts.append(ASSISTANT_HEADER)
        for span in spans:
            texts.append(message.content[span.char_start : span.char_end])
            texts.append(separator)
            step_pieces.append(len(texts) - 1)
    return texts, step_pieces


def encode_steps(tokenizer, messages: Sequence[Message], steps: Sequence[StepSpan], separator: str = DEFAULT_SEPARATOR) -> EncodedSteps:
    """Tokenize a segmented conversation for a scalar-head PRM."""
    texts, step_pieces = pieces(messages, steps, separator)
    ids: list[int] = [tokenizer.bos_token_id] if getattr(tokenizer, "bos_token_id", None) is not None else []
    if not texts:
        return EncodedSteps(ids, [])
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    ends: list[int] = []
    wanted = set(step_pieces)
    for index, piece_ids in enumerate(encoded):
        if index in wanted and not piece_ids:
            raise ValueError(f"separator {separator!r} encodes to no tokens")
        ids.extend(piece_ids)
        if index in wanted:
            ends.append(len(ids) - 1)
    return EncodedSteps(ids, ends)

"""Lenient extraction of a final numeric answer from a model's reply.

Rules, first that applies (documented in docs/environments.md):
1. the content of the last `\\boxed{...}`;
2. the number after the last `Answer:` / `answer is` (any case);
3. the last number anywhere in the reply.
Tool calls (`<tool_call>...</tool_call>`) are ignored. Numbers may carry a sign,
thousands separators (`1,234`), a decimal part, or be a fraction `a/b`; they are
compared exactly (as fractions), so `12`, `12.0` and `24/2` are all 12.
"""

from __future__ import annotations

import re
from fractions import Fraction

_TOOL_CALLS = re.compile(r"<tool_call>.*?(</tool_call>|$)", re.DOTALL)
_NUMBER = r"[-+−]?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?"
_NUMBER_RE = re.compile(_NUMBER)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_ANSWER = re.compile(r"(?:answer\s*(?:is|:|=)\s*\**\s*)(" + _NUMBER + ")", re.IGNORECASE)


def parse_number(text: str) -> Fraction | None:
    """A number written as `text` (see the module doc), or None."""
    text = text.strip().replace("−", "-").replace(",", "").replace(" ", "").rstrip(".")
    if not text:
        return None
    try:
        if "/" in text:
            numerator, denominator = text.split("/", 1)
            return Fraction(Fraction(numerator), Fraction(denominator))
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


def extract_answer(reply: str) -> Fraction | None:
    """The reply's final answer, or None when it has no number."""
    reply = _TOOL_CALLS.sub(" ", reply)
    boxed = _BOXED.findall(reply)
    if boxed:
        numbers = _NUMBER_RE.findall(boxed[-1])
        if numbers:
            return parse_number(numbers[-1])
    answers = _ANSWER.findall(reply)
    if answers:
        return parse_number(answers[-1])
    numbers = _NUMBER_RE.findall(reply)
    return parse_number(numbers[-1]) if numbers else None


def format_number(value: Fraction) -> str:
    """`12` for integers, `3/4` otherwise (how references are written)."""
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"

"""Lenient final-answer extraction (the rules documented in docs/environments.md)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from outrider.envs.builtin.answers import extract_answer, format_number, parse_number


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("42", Fraction(42)),
        ("17 + 25 = 42", Fraction(42)),  # rule 3: the last number
        ("Answer: 42. I checked 40 and 2.", Fraction(42)),  # rule 2 beats the later numbers
        ("So the answer is 1,234 apples", Fraction(1234)),
        ("First \\boxed{7}, no wait \\boxed{8}. Answer: 9", Fraction(8)),  # rule 1 beats rule 2
        ("\\boxed{x = 12}", Fraction(12)),
        ("Answer: -5", Fraction(-5)),
        ("Answer: 12.0", Fraction(12)),
        ("Answer: 3/4", Fraction(3, 4)),
        ("The result is −3", Fraction(-3)),  # a Unicode minus sign
        ('<tool_call>{"name": "python", "arguments": {"code": "print(99)"}}</tool_call> I will wait', None),
        ("no digits here", None),
        ("", None),
    ],
)
def test_extract_answer(reply, expected):
    assert extract_answer(reply) == expected


def test_parse_and_format_numbers():
    assert parse_number("1,000") == 1000
    assert parse_number("4/0") is None
    assert parse_number("abc") is None
    assert format_number(Fraction(24, 2)) == "12"
    assert format_number(Fraction(3, 4)) == "3/4"

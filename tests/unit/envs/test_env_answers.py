"""The one answer reader (`outrider.envs.answers`) on a hand-written table of answer
formats, run three ways: the function itself, the math environment's reward, and
the reward service's math verifier — which must be the same function and grade
every row the same."""

from __future__ import annotations

import dataclasses
import random
import re
import time
from fractions import Fraction

import pytest

from outrider.config.reward import MathVerifierConfig
from outrider.envs import answers
from outrider.envs.answers import extract_answer, format_number, last_boxed, parse_number
from outrider.envs.builtin import math_env, python_tool_env
from outrider.envs.builtin.math_env import MathEnv
from outrider.services.reward.verifiers import VerifierInput, build_verifier
from outrider.services.reward.verifiers import math as math_verifier

F = Fraction

# (response, the answer's value written by hand — None: no readable answer)
TABLE = [
    # plain numbers
    ("42", F(42)),
    ("-7", F(-7)),
    ("\u22127", F(-7)),  # the Unicode minus sign U+2212 is a minus
    ("+5", F(5)),
    ("- 5", F(-5)),  # one space may follow a sign
    ("-0", F(0)),  # negative zero is zero
    ("\\boxed{-0.0}", F(0)),
    # decimals: exact, not floats
    ("3.50", F(7, 2)),  # 3.50 = 350/100
    (".5", F(1, 2)),  # no leading zero
    ("42.0", F(42)),  # a decimal part of zeros is an integer
    ("0.1", F(1, 10)),  # exactly 1/10, not the float 0.1000000000000000055...
    ("0.333333", F(333333, 1000000)),  # read as written; closeness to 1/3 is the grader's tolerance
    # fractions
    ("3/4", F(3, 4)),
    ("3 / 4", F(3, 4)),  # spaces around the slash
    ("-3/4", F(-3, 4)),
    ("\\frac{3}{4}", F(3, 4)),  # the old env reader saw only the 4
    ("\\dfrac{3}{4}", F(3, 4)),
    ("\\tfrac{1}{2}", F(1, 2)),
    ("\\frac34", F(3, 4)),  # LaTeX's short form: one digit each
    ("$\\frac{-3}{4}$", F(-3, 4)),  # the sign inside the numerator
    ("\\boxed{\\dfrac{7}{2}} cm", F(7, 2)),
    # scientific notation
    ("1e-3", F(1, 1000)),  # the old env reader saw -3
    ("2.5E2", F(250)),  # capital E; 2.5 * 100
    ("6.02e23", F(602) * 10**21),  # 6.02 * 10^23 = 602 * 10^21
    ("2.5 \\times 10^{3}", F(2500)),  # LaTeX's form of 2.5e3
    # thousands separators
    ("1,234", F(1234)),
    ("We need 1,234,567.5 units", F(2469135, 2)),  # 1234567.5 = 2469135/2
    ("1, 2", F(2)),  # a comma and a space separate two numbers: the last is 2
    ("1,23", F(23)),  # not a thousands group (two digits): the numbers 1 and 23
    ("1{,}000", F(1000)),  # LaTeX's braced comma
    ("1\\,000", F(1000)),  # LaTeX's thin space between thousands
    # currency, percent, units
    ("$5", F(5)),
    ("\\$42", F(42)),
    ("The total is $3.50.", F(7, 2)),  # the final period ends the sentence
    ("50%", F(50)),  # the number as written; Number.percent is set (see test_percent_keeps_the_written_number)
    ("\\boxed{25\\%}", F(25)),
    ("42 cm", F(42)),
    ("42 apples", F(42)),
    ("The angle is 90^\\circ", F(90)),  # degrees dropped
    ("\\left( 3 \\right)", F(3)),  # LaTeX layout
    ("\\boxed{\\text{12 apples}}", F(12)),
    # where the answer is: GSM8K, then the last box, then a marker, then the last number
    ("#### 42\nso 41", F(42)),  # GSM8K's marker wins over a later number (the old env reader took 41)
    ("\\boxed{7} #### 8", F(8)),  # ... and over a box
    ("First \\boxed{7}, then \\boxed{8}", F(8)),  # the last box
    ("\\boxed{\\frac{\\text{1}}{2}}", F(1, 2)),  # nested braces inside the box
    ("\\fbox{5}", F(5)),
    ("\\boxed{7} but the answer is 9", F(7)),  # a box beats a marker
    ("\\boxed{x = 12}", F(12)),  # the part after the last '='
    ("The answer is 17.", F(17)),
    ("**Answer:** 42", F(42)),  # markdown around the marker
    ("Answer: 42. I checked 40 and 2.", F(42)),  # the marker's sentence ends at its period
    ("Final answer: 3 + 2 = 5", F(5)),  # after the last '='
    ("Answer: 13 (since 3*4 = 12)", F(13)),  # a remark in parentheses is dropped
    ("17 + 25 = 42", F(42)),  # no marker: the last number
    ("= -2", F(-2)),
    ("1 1/2", F(1, 2)),  # mixed numbers are not read: 1, then 1/2
    # no readable answer
    ("I do not know", None),
    ("", None),
    ("x2 and v3", None),  # digits inside words are not numbers
    ('<tool_call>{"name": "python", "arguments": {"code": "print(99)"}}</tool_call> I will wait', None),  # a program is not an answer
    ("Answer: \\frac{1}{0}", None),  # a zero denominator: unreadable, not an earlier number
    ("1e99999999", None),  # exponent beyond MAX_EXPONENT: unreadable, and no 10**99999999 is computed
    ("1" * 101, None),  # more than MAX_DIGITS digits
]
IDS = [f"{i:02d}:{response[:30]!r}" for i, (response, _) in enumerate(TABLE)]


def wrong_reference(value: Fraction) -> Fraction:
    """A reference ≥ 1 away from `value` and far outside any relative tolerance."""
    return value + 1 + abs(value)


def test_the_table_is_large_enough():
    assert len(TABLE) >= 40 and len({response for response, _ in TABLE}) == len(TABLE)


@pytest.mark.parametrize(("response", "expected"), TABLE, ids=IDS)
def test_the_shared_reader(response, expected):
    found = extract_answer(response)
    if expected is None:
        assert found.number is None
    else:
        assert found.number is not None and found.number.value == expected, found


def test_both_consumers_call_the_same_reader():
    assert math_env.extract_answer is answers.extract_answer
    assert python_tool_env.extract_answer is answers.extract_answer
    assert math_verifier.extract_answer is answers.extract_answer
    assert math_verifier.parse_number is answers.parse_number


async def env_reward(env: MathEnv, response: str, reference: Fraction) -> float:
    env.task = dataclasses.replace(env.task, reference=format_number(reference))
    return (await env.step(response)).reward


async def verifier_value(response: str, reference: Fraction) -> float:
    verifier = build_verifier(MathVerifierConfig())
    return (await verifier.verify(VerifierInput(response=response, reference=format_number(reference)))).value


@pytest.mark.parametrize(("response", "expected"), TABLE, ids=IDS)
async def test_the_env_and_the_verifier_grade_alike(response, expected):
    env = MathEnv()
    await env.reset(env.tasks("train")[0].id, seed=0)
    right = expected if expected is not None else F(42)
    grades = {
        "env, right reference": await env_reward(env, response, right),
        "verifier, right reference": await verifier_value(response, right),
        "env, wrong reference": await env_reward(env, response, wrong_reference(right)),
        "verifier, wrong reference": await verifier_value(response, wrong_reference(right)),
    }
    correct = 1.0 if expected is not None else 0.0
    assert grades == {
        "env, right reference": correct,
        "verifier, right reference": correct,
        "env, wrong reference": 0.0,
        "verifier, wrong reference": 0.0,
    }


def test_percent_keeps_the_written_number():
    # 50% is 50 with the flag; the verifier's `percent` setting decides whether 1/2 matches too.
    found = extract_answer("It is 50%.").number
    assert found.value == 50 and found.percent
    assert parse_number("12%").percent and parse_number("12%").value == 12


def test_rules_are_reported():
    assert extract_answer("#### 3").rule == "gsm8k"
    assert extract_answer("\\boxed{3}").rule == "boxed"
    assert extract_answer("Final answer: 3").rule == "marker"
    assert extract_answer("3 and 4").rule == "last number" and extract_answer("3 and 4").number.value == 4
    assert extract_answer("nothing").rule == "none"
    # A region without a number passes to the next rule.
    assert extract_answer("\\boxed{x} so 5").rule == "last number"


def test_unreadable_numbers_say_why():
    assert extract_answer("1e99999999").problem == "1e99999999: exponent beyond ±200"
    assert extract_answer("Answer: 1/0").problem == "1/0: division by zero"
    assert "more than 100 digits" in extract_answer("1" * 5000).problem
    assert extract_answer("1e200").number.value == 10**200  # the bound itself is readable


def test_parse_number_reads_a_whole_reference_or_nothing():
    assert parse_number("\\frac{1}{2}").value == F(1, 2)
    assert parse_number("-1,000.25").value == F(-4001, 4)
    assert parse_number("1,000").value == 1000
    assert parse_number("42.").value == 42
    assert parse_number("4/0") is None and parse_number("twelve") is None and parse_number("12 apples") is None


def test_format_number():
    assert format_number(F(24, 2)) == "12" and format_number(F(3, 4)) == "3/4" and format_number(F(-1, 2)) == "-1/2"


def _boxes_by_counting(text: str) -> str | None:
    """Reference: each box's braces counted from its opening, the last that closes."""
    found = None
    for match in re.finditer(r"\\(?:boxed|fbox)[ \t]*\{", text):
        depth = 1
        for position in range(match.end(), len(text)):
            depth += {"{": 1, "}": -1}.get(text[position], 0)
            if depth == 0:
                found = text[match.end() : position]
                break
    return found


def test_last_boxed_matches_counting_braces():
    rng = random.Random(0)
    pieces = ["{", "}", "\\boxed{", "\\fbox {", "a", "1", " ", "\0"]
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        assert last_boxed(text) == _boxes_by_counting(text), text
    long_box = "\\boxed{" + "{}" * 5000 + "x}" + "{" * 10  # the close lies chunks away from the opening
    assert last_boxed(long_box) == "{}" * 5000 + "x"


MB = 1_000_000
HUGE = {
    "one long number": "1" * MB,
    "a long exponent": "1e" + "9" * MB,
    "dense numbers": "1 " * (MB // 2),
    "dense percents": "5%" * (MB // 2),
    "dense fractions": "1/" * (MB // 2),
    "unclosed braces in a box": "\\boxed{" + "{" * MB,
    "many unclosed boxes": "\\boxed{" * (MB // 7),
    "many closed boxes": "\\boxed{1}" * (MB // 9),
    "an unclosed remark": "Answer: (" + "a" * MB,
    "nested fractions": "\\frac{" * (MB // 6),
    "numbers in parentheses": "(5)" * (MB // 3),
    "many markers": "answer " * (MB // 7),
    "unclosed tool calls": "<tool_call>" * (MB // 11),
    "long prose": "The quick brown fox jumps over 13 lazy dogs. " * (MB // 45),
}


@pytest.mark.parametrize("text", HUGE.values(), ids=HUGE.keys())
def test_a_megabyte_is_read_in_seconds_not_minutes(text):
    # A guard against superlinear scans, not a speed test (bench/ measures speed): a
    # quadratic pass over a megabyte takes minutes (the "1e99999999" reference held the
    # reward service for ~4.5 min), a linear one well under a second of CPU time
    # (measured 0.05-1.0 s on our 2-core boxes, the slowest on an AVX2-only EPYC), so
    # the bound leaves room for slow machines and still fails on quadratic work.
    start = time.process_time()
    extract_answer(text)
    answers.answer_text(text)
    assert time.process_time() - start < 5.0

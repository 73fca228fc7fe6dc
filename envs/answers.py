"""The final answer of a math response, and how its numbers read: the one implementation.

The math environments' rewards (`outrider.envs.builtin`) and the reward service's
`math` and `format` verifiers all read answers here, so one episode gets one
grade wherever it is graded. The module sits in `outrider.envs`, the domain
layer: below the reward service (a component, which may import it) and beside —
not inside — the built-in environments, whose internals a service should not
reach into.

Where the answer is — the first rule that finds a number:

0. tool calls (`<tool_call>…</tool_call>`, or to the end when unclosed) are
   removed first: a number inside a program is not an answer;
1. `gsm8k`: the text after the last `####` — GSM8K's marker wins over
   everything else ("#### 42\\nso 41" → 42; "\\boxed{7} #### 8" → 8);
2. `boxed`: the content of the last `\\boxed{…}` or `\\fbox{…}` whose braces
   close, nested braces kept (`\\boxed{\\frac{1}{2}}`);
3. `marker`: the text after the last `Answer:`, `answer is`, `final answer`
   (any case; `####` counts as a marker for `has_answer_marker` too);
4. `last number`: the last number of the whole (normalized) response.

The text of rules 1 and 3 ends at the end of its line and of its sentence
("The answer is 12. Check: 40 + 3 = 43" → 12). Within rules 1–3 the text is
normalized, parenthesized remarks with a letter or `=` are dropped
("13 (since 3*4 = 12)" → 13), only the part after the last `=` is kept
("x = 3 + 2 = 5" → 5) and its *first* number is the answer ("42 apples" → 42).
A rule whose text holds no number passes to the next rule. When the number a
rule picks cannot be read (too large, a zero denominator) there is no answer,
and `Extracted.problem` says why: an earlier number is never used instead.

Normalization (LaTeX layout and currency go): `$` and `\\$`, `\\left`, `\\right`,
`\\displaystyle`, `\\!`, `\\,`, `\\;`, `\\:`, `\\(`, `\\)`, `\\[`, `\\]` are
removed; `~` and `\\ ` become spaces; `{,}` → `,`; `\\%` → `%`; `−` (U+2212) → `-`;
`\\text{…}` (`\\textbf`, `\\mathrm`, `\\mbox`, `\\operatorname`, …) → its
content; `\\frac{a}{b}` (`\\dfrac`, `\\tfrac`, `\\cfrac`) → `(a)/(b)`, also the
short `\\frac34`; a number alone in parentheses loses them (`(-3)` → `-3`);
degrees (`^\\circ`, `°`) are dropped; `a \\times 10^{k}` (`\\cdot`, `×`) → `aek`.
Macros nested deeper than MAX_NESTING levels are left as they are.

A number, after normalization, is in this order: a sign (`-`, `+`, optionally
one space after it); digits, with thousands commas only in groups of exactly
three (`1,234,567`; `1, 2` is two numbers, `1,23` is 1 and 23); a decimal part
(`3.50`, `.5`; in `42.` the period ends a sentence); an exponent (`1e-3`,
`2.5E2`); a denominator (`3/4`, `3 / 4`); a percent sign (`50%`). A number does
not start right after a letter, digit, `_` or `.` (`x2`, `v1.5` hold none).
Values are exact fractions: `42.0` = 42, `-0` = 0, `1e-3` = 1/1000, `0.1` = 1/10.
Not read: mixed numbers (`1 1/2` is 1, then 1/2), thousands separated by
spaces or periods, number words ("seven"), powers (`2^{10}` is 2, then 10).

Percent, decided: `50%` reads as 50 with `Number.percent` set, not as 1/2. The
number as written is kept and the grader decides, because datasets store the
answer to "what percent…" both ways (GSM8K: 50; others: 0.5): the reward
service's `percent` setting accepts p/100, p or either, and an environment
whose references are plain numbers compares p.

Bounds, so that no input stalls a grader: a number has at most MAX_DIGITS
digits (integer and decimal part together; the same for a denominator) and an
exponent within ±MAX_EXPONENT (so |value| < 1e300 stays a finite float for the
tolerance check); a larger one is unreadable ("1e99999999: exponent beyond
±200"). Every step is linear in the length of the response — the expressions
here cannot backtrack catastrophically — so a 1 MB response is read in well
under a second (tests/unit/envs/test_env_answers.py times the worst cases).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from itertools import accumulate
from typing import Literal

from outrider.envs.tools import remove_tool_calls

MAX_DIGITS = 100
"""Digits a readable number may have (integer and decimal part together)."""
MAX_EXPONENT = 200
"""Largest |k| of a readable exponent `e k`."""
MAX_NESTING = 8
"""LaTeX macros (`\\text`, `\\frac`) are unwrapped to this depth."""

Rule = Literal["gsm8k", "boxed", "marker", "last number", "none"]

GSM8K_MARKER = "####"
ANSWER_MARKER = re.compile(r"answer", re.IGNORECASE)
"""An answer marker's word; `final answer` ends where `answer` does, so it needs no pattern of its own."""
_MARKER_TAIL = re.compile(r"\s*(?:is|:|=)?\s*:?")

_LAYOUT = ("\\left", "\\right", "\\displaystyle", "\\!", "\\,", "\\;", "\\:", "\\(", "\\)", "\\[", "\\]", "\\$")
_TEXT_MACRO = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox|operatorname)[ \t]*\{([^{}]*)\}")
_FRAC = re.compile(r"\\[dtc]?frac[ \t]*\{([^{}]*)\}[ \t]*\{([^{}]*)\}")
_FRAC_SHORT = re.compile(r"\\[dtc]?frac[ \t]*([0-9])[ \t]*([0-9])")
_PAREN_NUMBER = re.compile(r"\([ \t]*([-+]?[ \t]?[0-9.,]+)[ \t]*\)")
_TIMES_TEN = re.compile(
    r"([0-9])[ \t]*(?:\\times|\\cdot|×)[ \t]*10[ \t]*\^[ \t]*(?:\{[ \t]*([-+]?[0-9]+)[ \t]*\}|([-+]?[0-9]+))"
)
_DEGREES = re.compile(r"\^[ \t]*\{?[ \t]*\\circ[ \t]*\}?|\\circ|°")
_PARENS = re.compile(r"\([^()]*\)")
_REMARK_SIGN = re.compile(r"[A-Za-z=]")
_SENTENCE_END = re.compile(r"\.(?:\s|$)")
_BOX_START = re.compile(r"\\(?:boxed|fbox)[ \t]*\{")
_BRACE = re.compile(r"[{}]")
_BRACE_STEP = {"{": 1, "\0": 1, "}": -1}
_NOT_BRACE = re.compile(r"[^{}\0]+")
_BOX_MARK = re.compile("\0")
# The number grammar of the module doc. The first lookahead only lets the scanner skip
# quickly to a possible start; the second requires a digit, so no match is empty.
_NUMBER = re.compile(
    r"(?=[-+.0-9])(?<![\w.])(?=[-+][ \t]?\.?[0-9]|\.?[0-9])"
    r"(?P<sign>[-+][ \t]?)?"
    r"(?P<int>[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)?"
    r"(?P<frac>\.[0-9]+)?"
    r"(?P<exp>[eE][-+]?[0-9]+)?"
    r"(?:[ \t]{0,3}/[ \t]{0,3}(?P<den>[-+]?[0-9]+(?:\.[0-9]+)?))?"
    r"(?P<pct>[ \t]{0,3}%)?"
)


@dataclass(frozen=True)
class Number:
    """A number as written: its exact value, whether a `%` followed it, and its text."""

    value: Fraction
    percent: bool
    text: str


@dataclass(frozen=True)
class Extracted:
    """The final answer of a response (see the module doc)."""

    number: Number | None
    """The answer, when a readable number was found."""
    text: str
    """The answer's text: the normalized part of the rule's text, or the number."""
    rule: Rule
    """Which rule found it ("none": no number anywhere)."""
    problem: str = ""
    """Why `number` is None although a number was there (too large, `1/0`)."""


def normalize(text: str) -> str:
    """`text` with LaTeX layout removed, so that numbers read plainly: `\\frac{3}{4}` -> `3/4`.

    Each rewrite runs only when its trigger is in the text: a long reply without
    LaTeX costs a few substring searches."""
    text = text.replace("\u2212", "-").replace("{,}", ",")
    if "\\" in text:
        text = text.replace("\\%", "%")
        for token in _LAYOUT:
            text = text.replace(token, "")
        text = text.replace("\\ ", " ")
    text = text.replace("$", "").replace("~", " ")
    if "10" in text and ("\\times" in text or "\\cdot" in text or "×" in text):
        text = _TIMES_TEN.sub(lambda m: f"{m[1]}e{m[2] or m[3]}", text)
    for _ in range(MAX_NESTING):
        before = text
        if "\\" in text:
            text = _TEXT_MACRO.sub(lambda m: " " + m[1], text)
            text = _FRAC.sub(lambda m: f"({m[1]})/({m[2]})", text)
            text = _FRAC_SHORT.sub(lambda m: f"{m[1]}/{m[2]}", text)
        if "(" in text:
            text = _PAREN_NUMBER.sub(lambda m: m[1], text)
        if text == before:
            break
    if "\\circ" in text or "°" in text:
        text = _DEGREES.sub("", text)
    return text


def normalize_text(text: str) -> str:
    """For answers that are not numbers: no LaTeX layout, no spaces, no final period, case-folded."""
    return re.sub(r"\s+", "", normalize(text)).rstrip(".").casefold()


def format_number(value: Fraction) -> str:
    """`12` for integers, `3/4` otherwise (how references are written)."""
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _digits_value(digits: str, decimals: str) -> Fraction:
    return Fraction(int(digits + decimals or "0"), 10 ** len(decimals))


def _read(match: re.Match) -> Number | str:
    """The number `match` spells, or why it cannot be read."""
    text = match.group(0).strip()
    digits, decimals = (match["int"] or "").replace(",", ""), (match["frac"] or ".")[1:]
    if len(digits) + len(decimals) > MAX_DIGITS:
        return f"{_clip(text)}: more than {MAX_DIGITS} digits"
    value = _digits_value(digits, decimals)
    if match["exp"]:
        sign, magnitude = (-1 if "-" in match["exp"] else 1), match["exp"][1:].lstrip("+-").lstrip("0")
        if len(magnitude) > len(str(MAX_EXPONENT)) or int(magnitude or "0") > MAX_EXPONENT:
            return f"{_clip(text)}: exponent beyond ±{MAX_EXPONENT}"
        value *= Fraction(10) ** (sign * int(magnitude or "0"))
    if match["den"] is not None:
        den = match["den"].lstrip("+-")
        if len(den) > MAX_DIGITS + 1:
            return f"{_clip(text)}: denominator of more than {MAX_DIGITS} digits"
        whole, _, part = den.partition(".")
        denominator = _digits_value(whole, part) * (-1 if match["den"].startswith("-") else 1)
        if denominator == 0:
            return f"{_clip(text)}: division by zero"
        value /= denominator
    if (match["sign"] or " ")[0] == "-":
        value = -value
    return Number(value, match["pct"] is not None, text)


def parse_number(text: str) -> Number | None:
    """`text` as one number (a reference such as "0.5", "1/2", "\\frac{1}{2}", "50%"), else None."""
    clean = normalize(text).strip().rstrip(".")
    match = _NUMBER.fullmatch(clean) if clean else None
    read = _read(match) if match is not None else None
    return read if isinstance(read, Number) else None


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{…}` / `\\fbox{…}` whose braces close, or None.

    Linear, and at C speed however the braces nest: the text is reduced to its
    braces (a box's opening brace marked "\\0"), their running depth comes from
    one `accumulate`, and a box closes at the first later brace where the depth
    falls below its level (`list.index`) — searched only up to the next box's
    opening: that later box did not close (else it would have been returned),
    so nothing opened before it closes after it.
    """
    opens = list(_BOX_START.finditer(text))
    if not opens:
        return None
    tail = text[opens[0].start() :].replace("\0", " ")
    braces = _NOT_BRACE.sub("", _BOX_START.sub("\0", tail))
    depth = list(accumulate(map(_BRACE_STEP.__getitem__, braces)))
    index = [m.start() for m in _BOX_MARK.finditer(braces)]
    ends = index[1:] + [len(depth)]
    for box, i, end in zip(reversed(opens), reversed(index), reversed(ends)):
        if end > i + 1 and min(depth[i + 1 : end]) < depth[i]:
            close = depth.index(depth[i] - 1, i + 1, end)
            return text[box.end() : _nth_brace_after(text, box.end() - 1, close - i)]
    return None


def _nth_brace_after(text: str, start: int, n: int, chunk: int = 4096) -> int:
    """Position of the n-th brace after the one at `start`: whole chunks are skipped by counting."""
    position = start + 1
    while True:
        stop = position + chunk
        found = text.count("{", position, stop) + text.count("}", position, stop)
        if found >= n:
            break
        n, position = n - found, stop
    for brace in _BRACE.finditer(text, position, stop):
        n -= 1
        if n == 0:
            return brace.start()
    raise AssertionError("unreachable: the chunk holds the brace")


def has_answer_marker(text: str) -> bool:
    """Whether `text` has an answer marker (`####`, `Answer:`, `answer is`, `final answer`)."""
    return GSM8K_MARKER in text or ANSWER_MARKER.search(text) is not None


def _last_marker_end(text: str) -> int | None:
    last = None
    for last in ANSWER_MARKER.finditer(text):
        pass
    return _MARKER_TAIL.match(text, last.end()).end() if last is not None else None


def _line_from(text: str, start: int) -> str:
    end = text.find("\n", start)
    return text[start : end if end != -1 else len(text)]


def _sentence(line: str) -> str:
    end = _SENTENCE_END.search(line)
    return line[: end.start()] if end is not None else line


def _answer_part(region: str) -> str:
    """Normalized, remarks in parentheses dropped, the part after the last `=`."""
    text = _PARENS.sub(lambda m: " " if _REMARK_SIGN.search(m[0]) else m[0], normalize(region))
    return text.rsplit("=", 1)[-1]


def _regions(text: str):
    """(rule, text) of rules 1-3 that apply, in order."""
    gsm8k = text.rfind(GSM8K_MARKER)
    if gsm8k != -1:
        yield "gsm8k", _sentence(_line_from(text, gsm8k + len(GSM8K_MARKER)))
    boxed = last_boxed(text)
    if boxed is not None:
        yield "boxed", boxed
    marker = _last_marker_end(text)
    if marker is not None:
        yield "marker", _sentence(_line_from(text, marker))


def _found(read: Number | str, text: str, rule: Rule) -> Extracted:
    if isinstance(read, Number):
        return Extracted(read, text, rule)
    return Extracted(None, text, rule, read)


def extract_answer(response: str) -> Extracted:
    """The final answer of `response` (the rules are in the module doc)."""
    text = remove_tool_calls(response)
    for rule, region in _regions(text):
        part = _answer_part(region)
        first = _NUMBER.search(part)
        if first is not None:
            return _found(_read(first), part.strip(), rule)
    last = None
    for last in _NUMBER.finditer(normalize(text)):
        pass
    if last is None:
        return Extracted(None, "", "none")
    return _found(_read(last), last.group(0).strip(), "last number")


def answer_text(response: str) -> str:
    """The final answer as text, for references that are not numbers: the `####`
    line, else the last box, else the rest of the last marker's line, else the
    last non-empty line (tool calls removed; "" when there is none)."""
    text = remove_tool_calls(response)
    gsm8k = text.rfind(GSM8K_MARKER)
    if gsm8k != -1:
        return _line_from(text, gsm8k + len(GSM8K_MARKER)).strip()
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    marker = _last_marker_end(text)
    if marker is not None:
        return _line_from(text, marker).strip()
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""

"""Finding and reading the final answer of a math response.

Where the answer is, first rule that applies:
1. the content of the last `\\boxed{...}` (or `\\fbox{...}`), braces balanced;
2. the text after the last answer marker (`Answer:`, `answer is`, `final answer`,
   `####`) up to the end of its line;
3. the last number anywhere in the response.
A marker's text ends at its sentence's end ("The answer is 12. Check: ...").
Inside (1) and (2) parenthesized remarks with words or `=` are dropped
("13 (since 3*4 = 12)"), then the text after the last `=` is used
("x = 3 + 2 = 5"), and its first number is the answer ("42 apples"); when
(1)/(2) hold no number the next rule is tried.

How a number is read (after removing LaTeX layout: `$`, `\\left`, `\\,`,
`\\text{..}`, `^\\circ`, ...): an optional sign (also the Unicode minus),
digits with optional thousands commas (`1,000`), a decimal part (`3.50`, `.5`),
an exponent (`1e-3`), an optional denominator (`3/4`, `\\frac{3}{4}`,
`\\dfrac34`) and an optional `%`. Values are exact fractions. Not read: mixed
numbers (`1 1/2`), thousands separated by spaces, words ("seven").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

_LAYOUT = [
    "\\left", "\\right", "\\displaystyle", "\\!", "\\,", "\\;", "\\:", "\\ ", "~",
    "\\(", "\\)", "\\[", "\\]", "$", "\\$",
]
_TEXT_MACRO = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_FRAC_SHORT = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|°")
_PAREN_NUMBER = re.compile(r"\(\s*([-+]?\s*[\d.,]+)\s*\)")
_NUMBER = re.compile(
    r"(?<![\w.])"
    r"(?P<sign>[-+]\s?)?"
    r"(?P<int>\d{1,3}(?:,\d{3})+|\d+)?(?P<frac>\.\d+)?"
    r"(?P<exp>[eE][-+]?\d+)?"
    r"(?:\s*/\s*(?P<den>[-+]?\d+(?:\.\d+)?))?"
    r"(?P<pct>\s*%)?"
)
ANSWER_MARKER = re.compile(r"(?:final\s+answer|answer)\s*(?:is|:|=)?\s*:?|####", re.IGNORECASE)
_BOX_START = re.compile(r"\\(?:boxed|fbox)\s*\{")
_REMARK = re.compile(r"\([^()]*[A-Za-z=][^()]*\)")
_SENTENCE_END = re.compile(r"\.(?:\s|$)")


@dataclass(frozen=True)
class Number:
    value: Fraction
    percent: bool
    text: str


def normalize(text: str) -> str:
    """Drop LaTeX layout so numbers read plainly: `\\frac{3}{4}` -> `3/4`, `90^\\circ` -> `90`."""
    text = text.replace("\u2212", "-").replace("\\%", "%").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    for token in _LAYOUT:
        text = text.replace(token, " " if token in ("\\ ", "~") else "")
    previous = None
    while previous != text:  # innermost first, so nested macros unwrap
        previous = text
        text = _TEXT_MACRO.sub(r" \1", text)
        text = _FRAC.sub(r"(\1)/(\2)", text)
        text = _FRAC_SHORT.sub(r"\1/\2", text)
        text = _PAREN_NUMBER.sub(r"\1", text)
    return _DEGREES.sub("", text)


def boxed_contents(text: str) -> list[str]:
    """Contents of every `\\boxed{...}`, with nested braces kept."""
    found = []
    for match in _BOX_START.finditer(text):
        depth, start = 1, match.end()
        for pos in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[pos], 0)
            if depth == 0:
                found.append(text[start:pos])
                break
    return found


def _to_fraction(match: re.Match) -> Fraction | None:
    if match.group("int") is None and match.group("frac") is None:
        return None
    sign = -1 if (match.group("sign") or "").strip() == "-" else 1
    body = (match.group("int") or "0").replace(",", "") + (match.group("frac") or "") + (match.group("exp") or "")
    value = Fraction(body)
    if match.group("den") is not None:
        denominator = Fraction(match.group("den"))
        if denominator == 0:
            return None
        value /= denominator
    return sign * value


def numbers(text: str) -> list[Number]:
    """Every number in already normalized text, in order."""
    found = []
    for match in _NUMBER.finditer(text):
        if not match.group(0).strip():
            continue
        value = _to_fraction(match)
        if value is not None:
            found.append(Number(value, match.group("pct") is not None, match.group(0).strip()))
    return found


def parse_number(text: str) -> Number | None:
    """`text` as one number (a reference such as "0.5", "1/2", "\\frac{1}{2}", "50%"), else None."""
    clean = normalize(text).strip().rstrip(".")
    match = _NUMBER.fullmatch(clean)
    if match is None or not clean:
        return None
    value = _to_fraction(match)
    return None if value is None else Number(value, match.group("pct") is not None, clean)


def _answer_part(text: str) -> str:
    """Normalized, remarks dropped, the part after the last `=`."""
    return _REMARK.sub(" ", normalize(text)).rsplit("=", 1)[-1]


@dataclass(frozen=True)
class Extracted:
    number: Number | None
    """The answer, when it is a number."""
    text: str
    """The answer's text (boxed content, marker line, or the number)."""
    rule: str
    """Where it was found: "boxed", "marker", "last number" or "none"."""


def extract_answer(response: str) -> Extracted:
    """The final answer of `response` (see the module doc for the rules)."""
    boxed = boxed_contents(response)
    if boxed:
        inner = _answer_part(boxed[-1])
        found = numbers(inner)
        if found:
            return Extracted(found[0], inner.strip(), "boxed")
    markers = list(ANSWER_MARKER.finditer(response))
    if markers:
        line = response[markers[-1].end() :].split("\n", 1)[0]
        line = _SENTENCE_END.split(line, 1)[0]
        inner = _answer_part(line)
        found = numbers(inner)
        if found:
            return Extracted(found[0], inner.strip(), "marker")
    found = numbers(normalize(response))
    if found:
        return Extracted(found[-1], found[-1].text, "last number")
    text = boxed[-1] if boxed else (response[markers[-1].end() :].split("\n", 1)[0] if markers else "")
    return Extracted(None, text.strip(), "none")


def normalize_text(text: str) -> str:
    """For non-numeric answers: no LaTeX layout, no spaces, no trailing period, case-folded."""
    return re.sub(r"\s+", "", normalize(text)).rstrip(".").casefold()

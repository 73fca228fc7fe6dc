"""`math`: the response's final answer against the reference; 1 when equal, else 0.

Answers are found and read by `outrider.envs.answers`, the one reader the math
environments use too (`####`, then the last box, then an answer marker, then
the last number; fractions, LaTeX, units, commas, signs, decimals, exponents,
percent), so this verifier and an environment's own reward read one answer.
Numbers are equal when they are the same fraction, or within
abs_tol + rel_tol·|reference| (so 0.333333 matches 1/3 at rel_tol 1e-6).

Percent (config `percent`): `either` (default) reads "50%" as 0.5 or as 50 and
accepts either match, because datasets store the answer to "what percent..."
both ways (GSM8K: 50; others: 0.5). `fraction` reads it only as 0.5,
`literal` only as 50. The same holds for a reference written with `%`.

A reference that is not a number is compared as text (LaTeX layout, spaces,
case and a final period ignored) with `answer_text`: the `####` line, else the
boxed answer, else the marker's text, else the last line. A response without
an answer (or whose answer cannot be read: too large, `1/0`) is incorrect
(value 0, detail "no answer found", with the reason), not an error; an empty
reference is an error.
"""

from __future__ import annotations

from fractions import Fraction

from outrider.envs.answers import Number, answer_text, extract_answer, format_number, normalize_text, parse_number
from outrider.services.reward.verifiers.base import Verdict, Verifier, VerifierError, VerifierInput


def readings(number: Number, percent: str) -> list[Fraction]:
    """The values a written number may stand for."""
    if not number.percent:
        return [number.value]
    return {"fraction": [number.value / 100], "literal": [number.value], "either": [number.value / 100, number.value]}[percent]


def close(answer: Fraction, reference: Fraction, rel_tol: float, abs_tol: float) -> bool:
    if answer == reference:
        return True
    return abs(float(answer) - float(reference)) <= abs_tol + rel_tol * abs(float(reference))


def judge(response: str, reference: str, rel_tol: float = 1e-6, abs_tol: float = 1e-9, percent: str = "either") -> Verdict:
    """1.0 when the final answer of `response` equals `reference`, else 0.0, with the reason."""
    if not reference.strip():
        raise VerifierError("the item has no reference answer")
    expected = parse_number(reference)
    if expected is None:
        return _judge_text(response, reference)
    found = extract_answer(response)
    if found.number is None:
        reason = f": {found.problem}" if found.problem else ""
        return Verdict(0.0, f"no answer found (expected {reference.strip()}){reason}")
    for got in readings(found.number, percent):
        for want in readings(expected, percent):
            if close(got, want, rel_tol, abs_tol):
                return Verdict(1.0, f"correct: {found.number.text} ({found.rule}) = {reference.strip()}")
    return Verdict(0.0, f"expected {reference.strip()}, got {found.number.text} = {format_number(found.number.value)} ({found.rule})")


def _judge_text(response: str, reference: str) -> Verdict:
    candidate = answer_text(response)
    if not candidate:
        return Verdict(0.0, f"no answer found (expected {reference.strip()})")
    if normalize_text(candidate) == normalize_text(reference):
        return Verdict(1.0, f"correct (compared as text): {candidate}")
    return Verdict(0.0, f"expected {reference.strip()}, got {candidate} (compared as text)")


class MathVerifier(Verifier):
    name = "math"

    async def verify(self, item: VerifierInput) -> Verdict:
        return judge(item.response, item.reference, self.cfg.rel_tol, self.cfg.abs_tol, self.cfg.percent)

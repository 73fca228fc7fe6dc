"""The math verifier on a table of tricky answers, and the answer reader behind it."""

from __future__ import annotations

from fractions import Fraction

import pytest

from outrider.services.reward.verifiers import VerifierError
from outrider.envs.answers import extract_answer, parse_number
from outrider.services.reward.verifiers.math import judge

# (response, reference, expected value, why)
TRICKY = [
    ("The answer is 1/2.", "0.5", 1.0, "fraction vs decimal; the sentence's period is not a decimal point"),
    ("\\boxed{\\frac{3}{4}}", "0.75", 1.0, "LaTeX fraction inside \\boxed"),
    ("\\boxed{\\dfrac34}", "3/4", 1.0, "short \\dfrac form"),
    ("$\\frac{-3}{4}$", "-0.75", 1.0, "negative numerator inside \\frac"),
    ("42 apples", "42", 1.0, "units after the number"),
    ("The total is $3.50.", "3.5", 1.0, "currency sign, trailing zero, final period"),
    ("3.50", "3.5", 1.0, "trailing zero"),
    ("-7", "-7", 1.0, "negative number"),
    ("It drops to \u22127 degrees", "-7", 1.0, "Unicode minus sign"),
    ("1,000", "1000", 1.0, "thousands comma"),
    ("We need 1,234,567.5 units", "1234567.5", 1.0, "several thousands commas and a decimal part"),
    ("50%", "0.5", 1.0, "percent read as a fraction (percent: either)"),
    ("50%", "50", 1.0, "percent read literally (percent: either)"),
    ("0.5", "50%", 1.0, "a reference written as a percent"),
    ("\\boxed{25\\%}", "0.25", 1.0, "LaTeX percent"),
    ("The angle is 90^\\circ", "90", 1.0, "degrees"),
    (".5", "1/2", 1.0, "decimal without a leading zero"),
    ("1e-3", "0.001", 1.0, "scientific notation"),
    ("Answer: 12 (since 3*4 = 12)", "12", 1.0, "explanation after the answer"),
    ("Answer: 13 (since 3*4 = 12)", "12", 0.0, "the remark's number is not the answer"),
    ("Answer: 3 + 2 = 5", "5", 1.0, "the value after the last '='"),
    ("\\boxed{x = 5}", "5", 1.0, "variable assignment in the box"),
    ("The answer is 42. Check: 40 + 3 = 43", "42", 1.0, "trailing sentences after the marker"),
    ("First 3, then 7, so 12 in total.", "12", 1.0, "several numbers, no marker: the last one"),
    ("Answer: 8. Hmm, or maybe 9", "8", 1.0, "the marker beats a later number"),
    ("\\boxed{7} but the answer is 9", "7", 1.0, "\\boxed beats an answer marker"),
    ("#### 72", "72", 1.0, "GSM8K marker"),
    ("\\boxed{\\text{12 apples}}", "12", 1.0, "\\text inside the box"),
    ("0.333333", "1/3", 1.0, "within tolerance: |0.333333 - 1/3| = 3.333e-7 <= 1e-9 + 1e-6 * (1/3) = 3.343e-7"),
    ("0.3333", "1/3", 0.0, "outside the tolerance: 3.3e-5 > 3.3e-7"),
    ("Answer: 41", "42", 0.0, "plainly wrong"),
    ("I do not know", "42", 0.0, "no number: incorrect, not an error"),
    ("Answer: \\frac{1}{0}", "5", 0.0, "division by zero is no number"),
    ("\\boxed{\\frac{x+1}{2}}", "\\frac{x + 1}{2}", 1.0, "non-numeric reference compared as text"),
    ("Answer: Paris.", "paris", 1.0, "text answer, case and final period ignored"),
    ("Answer: London", "Paris", 0.0, "wrong text answer"),
]


@pytest.mark.parametrize(("response", "reference", "expected", "why"), TRICKY, ids=[row[3] for row in TRICKY])
def test_tricky_answers(response, reference, expected, why):
    verdict = judge(response, reference)
    assert verdict.value == expected, f"{why}: {verdict.detail}"


def test_no_number_is_incorrect_with_a_detail_not_an_error():
    verdict = judge("I do not know", "42")
    assert verdict.value == 0.0 and verdict.detail == "no answer found (expected 42)"


def test_wrong_answer_detail_names_both_values():
    assert judge("so it is 41 in total", "42").detail == "expected 42, got 41 = 41 (last number)"


def test_empty_reference_is_an_error():
    with pytest.raises(VerifierError, match="no reference"):
        judge("42", "  ")


@pytest.mark.parametrize(
    ("percent", "reference", "expected"),
    [("fraction", "0.5", 1.0), ("fraction", "50", 0.0), ("literal", "50", 1.0), ("literal", "0.5", 0.0)],
)
def test_percent_modes(percent, reference, expected):
    assert judge("It is 50%.", reference, percent=percent).value == expected


def test_absolute_tolerance_for_zero_references():
    # rel_tol * |0| = 0, so only abs_tol admits 1e-12.
    assert judge("1e-12", "0", abs_tol=1e-9).value == 1.0
    assert judge("1e-12", "0", abs_tol=0.0).value == 0.0


def test_parse_number_reads_exact_fractions():
    assert parse_number("\\frac{1}{2}").value == Fraction(1, 2)
    assert parse_number("-1,000.25").value == Fraction(-4001, 4)
    assert parse_number("12%").percent and parse_number("12%").value == 12
    assert parse_number("twelve") is None and parse_number("1/0") is None


def test_extract_answer_reports_where_it_found_the_answer():
    assert extract_answer("\\boxed{3}").rule == "boxed"
    assert extract_answer("Final answer: 3").rule == "marker"
    assert extract_answer("3 and 4").rule == "last number" and extract_answer("3 and 4").number.value == 4
    assert extract_answer("nothing").rule == "none"
    nested = extract_answer("\\boxed{\\frac{\\text{1}}{2}}")
    assert nested.number.value == Fraction(1, 2)

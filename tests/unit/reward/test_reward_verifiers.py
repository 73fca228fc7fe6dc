"""Format and length verifiers, and how scoring combines verifiers and reports failures."""

from __future__ import annotations

import asyncio

import pytest

from outrider.config.reward import FormatVerifierConfig, LengthVerifierConfig, MathVerifierConfig
from outrider.learner.algos import off_policy
from outrider.services.reward.scoring import score_item
from outrider.services.reward.verifiers import Verdict, Verifier, VerifierInput, build_verifier
from outrider.services.reward.verifiers import length as length_verifier


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (0, 0.0),
        (3584, 0.0),  # = L_max - L_cache: no penalty yet
        (3585, -1 / 512),  # (3584 - 3585) / 512
        (3840, -0.5),  # halfway through the buffer
        (4096, -1.0),  # = L_max
        (4097, -1.0),  # beyond L_max
    ],
)
def test_length_verifier_is_dapo_soft_overlong(length, expected):
    verifier = build_verifier(LengthVerifierConfig(max_length=4096, buffer=512, unit="chars"))
    assert run(verifier.verify(VerifierInput(response="x" * length))).value == pytest.approx(expected, abs=1e-15)


def test_length_verifier_without_buffer_is_a_cliff():
    verifier = build_verifier(LengthVerifierConfig(max_length=10, buffer=0, unit="chars"))
    values = [run(verifier.verify(VerifierInput(response="x" * n))).value for n in (10, 11)]
    assert values == [0.0, -1.0]


def test_length_verifier_uses_the_learner_librarys_formula():
    assert length_verifier.overlong_penalty is off_policy.overlong_penalty


def test_length_verifier_needs_token_counts():
    verifier = build_verifier(LengthVerifierConfig(max_length=100, buffer=50))
    component = run(score_item(VerifierInput(response="some text", response_tokens=0), [(verifier, 1.0, 5.0)]))
    assert component.code == "INVALID_INPUT" and "response_tokens" in component.message and component.reward is None
    scored = run(score_item(VerifierInput(response="x", response_tokens=75), [(verifier, 1.0, 5.0)]))
    assert scored.reward == -0.5  # (50 - 75) / 50
    chars = build_verifier(LengthVerifierConfig(max_length=4, buffer=2, unit="chars"))
    assert run(chars.verify(VerifierInput(response="abcde"))).value == -1.0


@pytest.mark.parametrize(
    ("cfg", "response", "expected"),
    [
        (FormatVerifierConfig(require_answer="boxed"), "so \\boxed{3}", 1.0),
        (FormatVerifierConfig(require_answer="boxed"), "Answer: 3", 0.0),
        (FormatVerifierConfig(require_answer="marker"), "Answer: 3", 1.0),
        (FormatVerifierConfig(require_answer="any"), "the result: 3", 0.0),
        (FormatVerifierConfig(pattern=r"<think>.*</think>"), "<think>a\nb</think> 3", 1.0),
        (FormatVerifierConfig(pattern=r"<think>.*</think>", full_match=True), "<think>a</think> 3", 0.0),
        (FormatVerifierConfig(pattern=r"<think>.*</think>.*", full_match=True), "<think>a\nb</think> 3", 1.0),
    ],
)
def test_format_verifier(cfg, response, expected):
    assert run(build_verifier(cfg).verify(VerifierInput(response=response))).value == expected


def test_format_verifier_names_every_problem():
    cfg = FormatVerifierConfig(pattern="^<think>", require_answer="boxed")
    assert run(build_verifier(cfg).verify(VerifierInput(response="3"))).detail == "does not match /^<think>/; no \\boxed{...} answer"


class Exploding(Verifier):
    name = "exploding"

    async def verify(self, item):
        raise ZeroDivisionError("boom")


class Slow(Verifier):
    name = "slow"

    async def verify(self, item):
        await asyncio.sleep(10)
        return Verdict(1.0)


class NotANumber(Verifier):
    name = "nan"

    async def verify(self, item):
        return Verdict(float("nan"))


def test_weighted_sum_of_components():
    math_v = build_verifier(MathVerifierConfig())
    fmt = build_verifier(FormatVerifierConfig(require_answer="boxed"))
    length = build_verifier(LengthVerifierConfig(max_length=100, buffer=50))
    item = VerifierInput(response="\\boxed{42}", reference="42", response_tokens=60)
    scored = run(score_item(item, [(math_v, 1.0, 5.0), (fmt, 0.5, 5.0), (length, 2.0, 5.0)]))
    # 1.0 * 1 + 0.5 * 1 + 2.0 * ((50 - 60) / 50) = 1.5 - 0.4 = 1.1
    assert scored.code == "OK" and scored.reward == pytest.approx(1.1, abs=1e-12)
    assert [(c.name, c.value) for c in scored.components] == [("math", 1.0), ("format", 1.0), ("length", -0.2)]


@pytest.mark.parametrize(
    ("broken", "code", "message"),
    [
        (Exploding(None), "ERROR", "ZeroDivisionError: boom"),
        (Slow(None), "TIMEOUT", "verifier slow took longer than 0.05 s"),
        (NotANumber(None), "ERROR", "verifier nan returned a non-finite value nan"),
    ],
)
def test_a_failing_verifier_is_an_error_never_a_zero(broken, code, message):
    math_v = build_verifier(MathVerifierConfig())
    scored = run(score_item(VerifierInput(response="42", reference="42"), [(math_v, 1.0, 5.0), (broken, 1.0, 0.05)]))
    assert scored.reward is None
    assert (scored.code, scored.message, scored.source) == (code, message, f"verifier:{broken.name}")
    # The healthy component still reports its value.
    assert scored.components[0].value == 1.0 and scored.components[1].value is None

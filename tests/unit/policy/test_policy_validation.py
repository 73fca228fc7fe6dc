"""Request validation: defaults, limits, and messages that name the field."""

from __future__ import annotations

import pytest

from outrider.config.policy import PolicyLimits
from outrider.serving import InvalidArgument, NotFound
from outrider.services.policy.validation import (
    SamplingInput,
    bytes_per_token,
    check_model,
    check_prompt_bytes,
    check_prompt_count,
    check_prompt_ids,
    check_score_sequence,
    sampling_spec,
)

LIMITS = PolicyLimits(max_prompts=4, max_n=8, max_tokens=100, default_max_tokens=20)


def test_unset_fields_take_the_documented_defaults():
    spec = sampling_spec(SamplingInput(), LIMITS, vocab_size=10)
    assert (spec.n, spec.temperature, spec.top_p, spec.top_k, spec.max_tokens, spec.seed) == (1, 1.0, 1.0, 0, 20, None)


def test_explicit_fields_pass_through():
    given = SamplingInput(n=3, temperature=0.0, top_p=0.5, top_k=4, max_tokens=100, stop=("\n",), stop_token_ids=(9,), seed=5)
    spec = sampling_spec(given, LIMITS, vocab_size=10)
    assert (spec.n, spec.temperature, spec.top_p, spec.top_k, spec.max_tokens) == (3, 0.0, 0.5, 4, 100)
    assert (spec.stop, spec.stop_token_ids, spec.seed) == (("\n",), (9,), 5)


@pytest.mark.parametrize(
    "given, words",
    [
        (SamplingInput(n=9), ["sampling.n", "9", "limits.max_n"]),
        (SamplingInput(temperature=-0.1), ["sampling.temperature", "-0.1"]),
        (SamplingInput(temperature=float("nan")), ["sampling.temperature", "nan"]),
        (SamplingInput(top_p=0.0), ["sampling.top_p", "(0, 1]"]),
        (SamplingInput(top_p=1.0001), ["sampling.top_p"]),
        (SamplingInput(top_k=-1), ["sampling.top_k"]),
        (SamplingInput(max_tokens=0), ["sampling.max_tokens", "at least 1"]),
        (SamplingInput(max_tokens=101), ["sampling.max_tokens", "101", "limits.max_tokens"]),
        (SamplingInput(stop=("",)), ["sampling.stop[0]", "empty"]),
        (SamplingInput(stop=("x" * 257,)), ["sampling.stop[0]", "256"]),
        (SamplingInput(stop=("a",) * 17), ["sampling.stop", "17"]),
        (SamplingInput(stop_token_ids=(1, 10)), ["sampling.stop_token_ids[1]", "10", "[0, 10)"]),
        (SamplingInput(seed=-1), ["sampling.seed", "-1"]),
    ],
)
def test_bad_sampling_names_the_field(given, words):
    with pytest.raises(InvalidArgument) as failure:
        sampling_spec(given, LIMITS, vocab_size=10)
    for word in words:
        assert word in failure.value.message


def test_field_names_without_a_prefix_for_http():
    with pytest.raises(InvalidArgument, match=r"^temperature: "):
        sampling_spec(SamplingInput(temperature=-1), LIMITS, vocab_size=10, prefix="")


def test_prompt_rules():
    check_prompt_ids([1, 2, 3], max_context=4, where="prompts[0]")  # leaves 1 token of room
    with pytest.raises(InvalidArgument, match=r"prompts\[2\]: empty prompt"):
        check_prompt_ids([], max_context=4, where="prompts[2]")
    with pytest.raises(InvalidArgument, match=r"prompts\[0\]: prompt of 4 tokens leaves no room in the context of 4"):
        check_prompt_ids([1, 2, 3, 4], max_context=4, where="prompts[0]")
    with pytest.raises(InvalidArgument, match="prompts: empty"):
        check_prompt_count(0, LIMITS)
    with pytest.raises(InvalidArgument, match="5 items exceed the limit of 4"):
        check_prompt_count(5, LIMITS)


def test_score_sequence_rules():
    check_score_sequence([1, 2, 3, 4], prompt_length=4, max_context=4, where="s")  # nothing to score is allowed
    with pytest.raises(InvalidArgument, match="s.prompt_length: 0 must be at least 1"):
        check_score_sequence([1, 2], 0, 4, "s")
    with pytest.raises(InvalidArgument, match="s.prompt_length: 3 exceeds the sequence length 2"):
        check_score_sequence([1, 2], 3, 4, "s")
    with pytest.raises(InvalidArgument, match="s.token_ids: 5 tokens exceed the context of 4"):
        check_score_sequence([1] * 5, 1, 4, "s")


def test_model_names():
    check_model("", "tiny")
    check_model("tiny", "tiny")
    with pytest.raises(NotFound, match="unknown model 'big'; this service serves 'tiny'"):
        check_model("big", "tiny")


def test_bytes_per_token_is_the_longest_token_text_in_utf8_bytes():
    assert bytes_per_token(["a", "é€", "<|im_start|>", ""]) == 12  # "<|im_start|>": 12 ASCII bytes
    assert bytes_per_token(["a", "é€"]) == 5  # é: 2 bytes, €: 3
    assert bytes_per_token(["a", "b"]) == 4  # the floor: one UTF-8 character of up to 4 bytes per token
    assert bytes_per_token(["\ufffd"]) == 4  # a partial byte sequence decodes to U+FFFD (3 bytes): the floor


def test_prompt_bytes_up_to_context_times_bytes_per_token():
    check_prompt_bytes(512 * 81, 512, 81, "prompts[0].text")
    check_prompt_bytes(10**9, None, 81, "text")  # no context known: no limit
    with pytest.raises(InvalidArgument, match=r"^prompts\[0\]\.text: 41473 bytes exceed the limit of 41472 bytes for a prompt "
                                              r"\(512 tokens of context \(limits\.max_context\) x 81 bytes"):
        check_prompt_bytes(512 * 81 + 1, 512, 81, "prompts[0].text")

"""Incremental detokenization of the HF backend: streamed text never retracts, stop strings are cut."""

from __future__ import annotations

import pytest
import torch

from outrider.models import materialize
from outrider.services.policy.backend import SamplingSpec
from outrider.services.policy.hf_decode import Row


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(materialize("smollm2-tokenizer")))


def feed(tokenizer, text: str, spec: SamplingSpec, stop_ids=frozenset()):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    row = Row(0, 0, [1], spec, budget=len(ids), generator=torch.Generator())
    deltas = []
    for token in ids:
        deltas.append(row.append(token, -1.0, tokenizer, frozenset(stop_ids)))
        if row.finish_reason:
            break
    return row, deltas


@pytest.mark.parametrize("text", ["Hello world, this is a test.", "café 🙂 naïve — ok", "  leading spaces\n\ttabs"])
def test_streamed_text_concatenates_to_the_decoded_text(tokenizer, text):
    row, deltas = feed(tokenizer, text, SamplingSpec(max_tokens=100))
    assert "".join(d.text_delta for d in deltas) == row.text == text
    assert all("\ufffd" not in d.text_delta for d in deltas)
    assert row.finish_reason == "length" and deltas[-1].finish_reason == "length"


def test_a_stop_string_cuts_text_that_was_never_streamed(tokenizer):
    row, deltas = feed(tokenizer, "Hello world, this is a test.", SamplingSpec(max_tokens=100, stop=("is a",)))
    # "this is a": the first "is a" starts after "this " ("is i" in "this" is not a match)
    assert row.text == "Hello world, this "
    assert "".join(d.text_delta for d in deltas) == row.text
    assert (row.finish_reason, row.stop_string) == ("stop", "is a")
    # the ids keep every sampled token, including the one that completed the stop string
    assert tokenizer.decode(row.token_ids).startswith("Hello world, this is a")


def test_a_stop_token_is_kept_and_ends_the_row(tokenizer):
    ids = tokenizer("one two three", add_special_tokens=False)["input_ids"]
    row, _ = feed(tokenizer, "one two three", SamplingSpec(max_tokens=100), stop_ids={ids[1]})
    assert row.token_ids == ids[:2] and row.finish_reason == "stop" and row.text == "one two"

"""PRM building blocks: segmentation, token encoding, AUC, the synthetic dataset (shaping: tests/unit/envs/test_env_shaping.py)."""

from __future__ import annotations

import json

import pytest

from outrider.services.reward.prm import dataset as ds
from outrider.services.reward.prm.encoding import encode_steps
from outrider.proto.chat import Message
from outrider.services.reward.prm.segmentation import StepSpan, segment, step_texts
from outrider.services.reward.prm.train import auc, byte_tokenizer

CONVERSATION = [
    Message("system", "Be brief."),
    Message("user", "Compute (12 + 7) - 3."),
    Message("assistant", "  12 + 7 = 19\n\n19 - 3 = 16\n\n\n\n  "),
    Message("user", "Sure?"),
    Message("assistant", "Yes.\n\nAnswer: 16"),
]


def test_segment_by_delimiter_strips_and_skips_blank_pieces():
    steps = segment(CONVERSATION, "delimiter", "\n\n")
    assert steps == [StepSpan(2, 2, 13), StepSpan(2, 15, 26), StepSpan(4, 0, 4), StepSpan(4, 6, 16)]
    assert step_texts(CONVERSATION, steps) == ["12 + 7 = 19", "19 - 3 = 16", "Yes.", "Answer: 16"]


def test_segment_by_turn():
    steps = segment(CONVERSATION, "turn")
    assert step_texts(CONVERSATION, steps) == ["12 + 7 = 19\n\n19 - 3 = 16", "Yes.\n\nAnswer: 16"]
    assert segment([Message("assistant", "   ")], "turn") == []


def test_segment_rejects_bad_modes():
    with pytest.raises(ValueError, match="non-empty delimiter"):
        segment(CONVERSATION, "delimiter", "")
    with pytest.raises(ValueError, match="unknown segmentation mode"):
        segment(CONVERSATION, "sentence")


def test_encoding_prefixes_are_exact_token_prefixes():
    tokenizer = byte_tokenizer()
    steps = segment(CONVERSATION, "delimiter", "\n\n")
    encoded = encode_steps(tokenizer, CONVERSATION, steps, separator="\n")
    assert len(encoded.ends) == 4
    # Byte tokens: each prefix decodes to the rendered conversation up to that step's separator.
    prefix = tokenizer.decode(encoded.ids[: encoded.ends[1] + 1])
    assert prefix == "system: Be brief.\nuser: Compute (12 + 7) - 3.\nassistant: 12 + 7 = 19\n19 - 3 = 16\n"
    last = tokenizer.decode(encoded.ids[: encoded.ends[3] + 1])
    assert last.endswith("user: Sure?\nassistant: Yes.\nAnswer: 16\n")
    # With a byte tokenizer, piecewise tokens equal tokenizing the whole text.
    assert encoded.ids == tokenizer(last, add_special_tokens=False)["input_ids"]
    # Messages after the last step are not encoded.
    only_first = encode_steps(tokenizer, CONVERSATION, steps[:1])
    assert tokenizer.decode(only_first.ids).endswith("assistant: 12 + 7 = 19\n")


def test_auc_hand_values():
    # The classic example: of the 4 (positive, negative) pairs, 3 are ordered right.
    assert auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert auc([0.5, 0.5], [0, 1]) == 0.5  # a tie counts 1/2
    assert auc([0.9, 0.1], [1, 0]) == 1.0 and auc([0.1, 0.9], [1, 0]) == 0.0
    with pytest.raises(ValueError, match="positive and one negative"):
        auc([0.1, 0.2], [1, 1])


def _check_arithmetic(step: str) -> bool:
    left, result = step.split(" = ")
    a, op, b = left.split()
    return (int(a) + int(b) if op == "+" else int(a) - int(b)) == int(result)


def test_synthetic_step_records():
    records = ds.make_step_records(300, seed=5)
    assert records == ds.make_step_records(300, seed=5)  # deterministic
    corrupted = [r for r in records if 0 in r.labels]
    assert 0.4 < len(corrupted) / len(records) < 0.6  # corrupt_fraction 0.5 over 300 (binomial sd 0.029)
    for record in records:
        # A label is 1 exactly when the step's arithmetic is right; a wrong step ends the solution.
        assert list(record.labels) == [int(_check_arithmetic(s)) for s in record.steps]
        assert 0 not in record.labels[:-1]
        numbers = [int(x) for s in record.steps for x in s.replace("=", " ").replace("+", " ").replace("-", " ").split()]
        assert all(1 <= x <= 99 for x in numbers)
    held_out = ds.make_step_records(100, seed=6, exclude={r.prompt for r in records})
    assert not {r.prompt for r in held_out} & {r.prompt for r in records}


def test_synthetic_pairs_differ_only_in_arithmetic():
    for pair in ds.make_pair_records(200, seed=1):
        assert all(_check_arithmetic(s) for s in pair.chosen)
        assert len(pair.chosen) == len(pair.rejected)
        wrong = [i for i, s in enumerate(pair.rejected) if not _check_arithmetic(s)]
        assert len(wrong) == 1 and pair.rejected[:wrong[0]] == pair.chosen[:wrong[0]]
        assert all(10 <= int(s.split(" = ")[1]) <= 99 for s in pair.rejected)


def test_dataset_files_roundtrip_and_errors(tmp_path):
    records = ds.make_step_records(5, seed=0)
    ds.write_jsonl(tmp_path / "steps.jsonl", records)
    assert ds.load_step_records(tmp_path / "steps.jsonl") == records
    pairs = ds.make_pair_records(3, seed=0)
    ds.write_jsonl(tmp_path / "pairs.jsonl", pairs)
    assert ds.load_pair_records(tmp_path / "pairs.jsonl") == pairs
    flat = tmp_path / "flat.jsonl"
    flat.write_text(json.dumps({"prefix": "Compute 2 + 3.", "step": "2 + 3 = 5", "label": 1}) + "\n")
    assert ds.load_step_records(flat) == [ds.StepsRecord("Compute 2 + 3.", ("2 + 3 = 5",), (1,))]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "steps": ["a"], "labels": [1]}\n{"prompt": "p", "steps": ["a", "b"], "labels": [1]}\n')
    with pytest.raises(ds.DatasetError, match=r"bad.jsonl:2: `labels` must be"):
        ds.load_step_records(bad)
    bad.write_text("not json\n")
    with pytest.raises(ds.DatasetError, match=r"bad.jsonl:1: not JSON"):
        ds.load_step_records(bad)
    with pytest.raises(ds.DatasetError, match="No such file"):
        ds.load_step_records(tmp_path / "missing.jsonl")

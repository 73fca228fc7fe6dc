"""TaskRecord JSON round trip, validation that names the field, and load_records."""

from __future__ import annotations

import json

import pytest

from outrider.eval.records import Solution, TaskRecord, load_records


def _record(task="t1", checkpoint="base", **kw) -> TaskRecord:
    fields = dict(env="math", samples=8, correct=3, first_try=1, errors=2,
                  solutions=(Solution(12, -4.5), Solution(3, -0.25)), entropies=(0.0, 1.25, 0.5), seconds=2.5)
    fields.update(kw)
    return TaskRecord(checkpoint, task, **fields)


def test_round_trip_through_json_text():
    r = _record()
    assert TaskRecord.from_json(json.loads(json.dumps(r.to_json()))) == r
    bare = TaskRecord("rl", "t2", "math", 4, 0, 0, 0)
    assert TaskRecord.from_json(bare.to_json()) == bare
    # The optional fields have defaults for records written without them.
    minimal = {"checkpoint": "rl", "task_id": "t2", "env": "math", "samples": 4, "correct": 0, "first_try": 0, "errors": 0}
    assert TaskRecord.from_json(minimal) == bare


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"correct": None}, "missing field 'correct'"),
        ({"samples": "8"}, "field 'samples' must be an integer"),
        ({"samples": True}, "field 'samples' must be an integer"),
        ({"task_id": ""}, "field 'task_id' must be a non-empty string"),
        ({"correct": 9}, "field 'correct' \\(9\\) exceeds 'samples' \\(8\\)"),
        ({"first_try": 4}, "field 'first_try' \\(4\\) exceeds 'correct' \\(3\\)"),
        ({"errors": -1}, "field 'errors' must be >= 0"),
        ({"solutions": [{"tokens": 0, "base_logprob_sum": -1.0}]}, "solutions\\[0\\]: field 'tokens' must be >= 1"),
        ({"solutions": [{"tokens": 3}]}, "solutions\\[0\\]: missing field 'base_logprob_sum'"),
        ({"solutions": [{"tokens": 3, "base_logprob_sum": 0.5}]}, "solutions\\[0\\]: field 'base_logprob_sum' must be <= 0"),
        ({"entropies": "0.5"}, "field 'entropies' must be a list"),
        ({"entropies": [0.1, float("nan")]}, "field 'entropies\\[1\\]' must be a finite number"),
        ({"seconds": "fast"}, "field 'seconds' must be a finite number"),
    ],
)
def test_from_json_errors_name_the_field(change, message):
    data = _record().to_json()
    for key, value in change.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    with pytest.raises(ValueError, match=message):
        TaskRecord.from_json(data)


def _write(path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))


def test_load_records_later_duplicate_wins_and_truncated_last_line_is_ignored(tmp_path):
    first = _record("t1", correct=1)
    again = _record("t1", correct=3)
    other = _record("t2")
    truncated = json.dumps(_record("t3").to_json())[:40]  # a write cut short by a kill: no newline
    _write(tmp_path / "records" / "base.jsonl",
           [json.dumps(first.to_json()) + "\n", json.dumps(other.to_json()) + "\n", json.dumps(again.to_json()) + "\n", truncated])
    _write(tmp_path / "records" / "rl.jsonl", [json.dumps(_record("t1", checkpoint="rl").to_json()) + "\n"])
    got = load_records(tmp_path)
    assert sorted(got) == ["base", "rl"]
    assert sorted(got["base"]) == ["t1", "t2"]
    assert got["base"]["t1"] == again and got["base"]["t2"] == other
    assert got["rl"]["t1"].checkpoint == "rl"


def test_load_records_of_a_folder_without_records_is_empty(tmp_path):
    assert load_records(tmp_path) == {}


def test_a_corrupt_line_before_the_end_is_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / "records" / "base.jsonl"
    _write(path, [json.dumps(_record("t1").to_json()) + "\n", "{not json\n", json.dumps(_record("t2").to_json()) + "\n"])
    with pytest.raises(ValueError, match=r"base\.jsonl:2: not a JSON line"):
        load_records(tmp_path)


def test_an_invalid_record_is_an_error_naming_file_line_and_field(tmp_path):
    bad = _record("t1").to_json() | {"correct": 99}
    _write(tmp_path / "records" / "base.jsonl", [json.dumps(bad) + "\n"])
    with pytest.raises(ValueError, match=r"base\.jsonl:1: task record base/t1: field 'correct' \(99\) exceeds"):
        load_records(tmp_path)


def test_a_record_in_the_wrong_checkpoint_file_is_an_error(tmp_path):
    _write(tmp_path / "records" / "base.jsonl", [json.dumps(_record("t1", checkpoint="rl").to_json()) + "\n"])
    with pytest.raises(ValueError, match="record of checkpoint 'rl' in the file of 'base'"):
        load_records(tmp_path)

"""`outrider eval`'s resume state on disk (outrider.eval.store) and its argument parsing."""

from __future__ import annotations

import json

import pytest

from outrider.eval import store
from outrider.eval.checkpoints import CheckpointError, parse_checkpoint_args
from outrider.proto.v1 import eval_pb2, trajectory_pb2


def _samples(task: str, correct: int) -> eval_pb2.TaskSamples:
    solution = trajectory_pb2.Trajectory(prompt_length=2, token_ids=[1, 2, 3], turns=[trajectory_pb2.Turn(start=2, completion_length=1)])
    return eval_pb2.TaskSamples(checkpoint="rl", task_id=task, env="math", samples=4, correct=correct,
                                solutions=[solution] * correct, entropies=[0.5, 1.25])


def test_samples_round_trip_and_a_later_line_wins(tmp_path):
    store.append_samples(tmp_path, _samples("test-00001", 1))
    store.append_samples(tmp_path, _samples("test-00002", 0))
    store.append_samples(tmp_path, _samples("test-00001", 2))
    loaded = store.load_samples(tmp_path, "rl")
    assert sorted(loaded) == ["math/test-00001", "math/test-00002"]
    assert loaded["math/test-00001"] == _samples("test-00001", 2)
    assert store.load_samples(tmp_path, "base") == {}


def test_a_line_cut_short_by_a_kill_is_ignored_but_a_broken_complete_line_is_an_error(tmp_path):
    store.append_samples(tmp_path, _samples("test-00001", 1))
    path = tmp_path / store.SAMPLES_DIR / "rl.jsonl"
    whole = json.dumps({"checkpoint": "rl", "task_id": "test-00002", "env": "math", "samples": 4})
    with open(path, "a") as out:
        out.write(whole[: len(whole) // 2])  # no newline: the write a SIGKILL interrupted
    assert sorted(store.load_samples(tmp_path, "rl")) == ["math/test-00001"]
    with open(path, "a") as out:
        out.write("\n" + whole + "\n")
    with pytest.raises(ValueError, match=r"rl\.jsonl:2: not a TaskSamples line"):
        store.load_samples(tmp_path, "rl")


def test_samples_of_another_checkpoint_in_a_file_are_refused(tmp_path):
    store.append_samples(tmp_path, _samples("test-00001", 1))
    (tmp_path / store.SAMPLES_DIR / "rl.jsonl").rename(tmp_path / store.SAMPLES_DIR / "base.jsonl")
    with pytest.raises(ValueError, match="samples of checkpoint 'rl' in the file of 'base'"):
        store.load_samples(tmp_path, "base")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([], "give at least one"),
        (["base"], "expected NAME=SOURCE"),
        (["=tiny-random"], "expected NAME=SOURCE"),
        (["a b=tiny-random"], "must be 1-64 letters"),
        (["../x=tiny-random"], "must be 1-64 letters"),
        (["a=tiny-random", "a=tiny-random-chars"], "'a' is given twice"),
    ],
)
def test_bad_checkpoint_arguments_are_named(values, message):
    with pytest.raises(CheckpointError, match=message):
        parse_checkpoint_args(values)


def test_checkpoint_arguments_keep_their_order():
    assert parse_checkpoint_args(["rl=runs/a/checkpoints/step-3", "base=tiny-random"]) == [
        ("rl", "runs/a/checkpoints/step-3"), ("base", "tiny-random")
    ]

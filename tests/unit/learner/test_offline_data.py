"""Offline datasets: chat rendering with the assistant mask, pair and trajectory sources,
and errors that name the file and line."""

from __future__ import annotations

import json
from functools import cache

import pytest
from google.protobuf import json_format
from transformers import AutoTokenizer

from outrider.learner.offline.data import (
    DataError,
    chat_examples,
    eval_sample_examples,
    group_pairs,
    pair_examples,
    trajectory_examples,
)
from outrider.learner.offline.render import ChatRenderer
from outrider.learner.offline.trainer import step_order
from outrider.models import resolve_model
from outrider.proto.v1 import eval_pb2
from outrider.proto.v1.trajectory_pb2 import INFRA_FAILURE_ENV_ERROR, Trajectory, TrajectoryGroup, Turn

CHAT = [
    {"role": "system", "content": "S"},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "yo"},
    {"role": "user", "content": "ok"},
    {"role": "assistant", "content": "fine"},
]


@cache
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_model("tiny-random"))  # SmolLM2's tokenizer and template


def renderer() -> ChatRenderer:
    return ChatRenderer(tokenizer())


def write_jsonl(path, records) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return str(path)


def test_tiny_chat_mask_by_hand():
    out = renderer().render(CHAT)
    # SmolLM2's template: "<|im_start|>system\nS<|im_end|>\n" is 6 tokens (<|im_start|>, system, \n, S,
    # <|im_end|>, \n), the user turn 6 more, the assistant header 4 (<|im_start|>, ass, istant, \n):
    # "yo" is token 16 and its <|im_end|> 17; the "\n" after it (18) is the template's, not the
    # model's. Then user "ok" (19-24), header (25-28), "fine" 29, <|im_end|> 30, "\n" 31.
    assert [i for i, m in enumerate(out.mask) if m] == [16, 17, 29, 30]
    assert len(out.token_ids) == 32
    pieces = [tokenizer().decode(out.token_ids[i : i + 2]) for i in (16, 29)]
    assert pieces == ["yo<|im_end|>", "fine<|im_end|>"]
    # Cutting at the spans changes nothing here: the ids are the whole rendering's tokens.
    text = tokenizer().apply_chat_template(CHAT, tokenize=False)
    assert out.token_ids == tokenizer()(text, add_special_tokens=False).input_ids


def test_train_from_leaves_the_history_untrained():
    out = renderer().render(CHAT, train_from=3)
    assert [i for i, m in enumerate(out.mask) if m] == [29, 30]


def test_chat_jsonl(tmp_path):
    path = write_jsonl(tmp_path / "chat.jsonl", [{"messages": CHAT}, "", {"messages": CHAT[:3]}])
    examples = chat_examples(path, renderer())
    assert [sum(e.mask) for e in examples] == [4, 2]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"chat\.jsonl:2: not JSON"),
        ('{"msgs": []}', r"chat\.jsonl:2: missing key\(s\) messages"),
        ('{"messages": [{"role": "user", "content": 3}]}', r"chat\.jsonl:2: messages\[0\]\.content: expected a string, got int"),
        ('{"messages": [{"role": "user", "content": "hi"}]}', r"chat\.jsonl:2: no assistant message to train on"),
        ('{"messages": []}', r"chat\.jsonl:2: messages: expected a non-empty list"),
        ('[1, 2]', r"chat\.jsonl:2: expected a JSON object with messages, got list"),
    ],
)
def test_chat_errors_name_file_and_line(tmp_path, line, message):
    path = write_jsonl(tmp_path / "chat.jsonl", [{"messages": CHAT}, line])
    with pytest.raises(DataError, match=message):
        chat_examples(path, renderer())


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"nowhere\.jsonl: No such file"):
        chat_examples(tmp_path / "nowhere.jsonl", renderer())


def test_pairs_text_and_message_responses(tmp_path):
    prompt = [{"role": "user", "content": "hi"}]
    record = {"prompt": prompt, "chosen": "yo", "rejected": [{"role": "assistant", "content": "fine"}]}
    (pair,) = pair_examples(write_jsonl(tmp_path / "pairs.jsonl", [record]), renderer())
    # The default system turn (SmolLM2 adds one) and the user turn come first, then the header.
    chosen_text = tokenizer().decode([t for t, m in zip(pair.chosen.token_ids, pair.chosen.mask) if m])
    rejected_text = tokenizer().decode([t for t, m in zip(pair.rejected.token_ids, pair.rejected.mask) if m])
    assert (chosen_text, rejected_text) == ("yo<|im_end|>", "fine<|im_end|>")
    first = pair.chosen.mask.index(True)
    assert pair.chosen.token_ids[:first] == pair.rejected.token_ids[:first], "both sides share the prompt"


def test_pair_errors(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": [{"role": "user", "content": "hi"}], "chosen": "yo"}])
    with pytest.raises(DataError, match=r"pairs\.jsonl:1: missing key\(s\) rejected"):
        pair_examples(path, renderer())


def _trajectory(index: int, reward: float, solved: bool, **extra) -> Trajectory:
    # prompt 3 tokens, a completion of 2, an observation of 1, a completion of 1
    return Trajectory(
        trajectory_id=f"g/{index}",
        prompt_length=3,
        token_ids=[10 + index, 11, 12, 13, 14, 15, 16],
        loss_mask=[False, False, False, True, True, False, True],
        turns=[Turn(start=3, completion_length=2, observation_length=1), Turn(start=6, completion_length=1)],
        outcome_reward=reward,
        solved=solved,
        **extra,
    )


def _groups_file(tmp_path) -> str:
    groups = [
        TrajectoryGroup(group_id="a", trajectories=[
            _trajectory(0, 0.0, False), _trajectory(1, 1.0, True), _trajectory(2, 0.5, False),
            _trajectory(3, 2.0, True, infra_failure=INFRA_FAILURE_ENV_ERROR),  # never used
        ]),
        TrajectoryGroup(group_id="b", trajectories=[_trajectory(4, 1.0, True), _trajectory(5, 1.0, True)]),
    ]
    return write_jsonl(tmp_path / "groups.jsonl", [json_format.MessageToDict(g) for g in groups])


def test_rejection_sampling_filters(tmp_path):
    path = _groups_file(tmp_path)
    solved = trajectory_examples(path, solved_only=True, min_reward=None)
    assert [e.token_ids[0] for e in solved] == [11, 14, 15]
    assert solved[0].mask == [False, False, False, True, True, False, True]
    assert [e.token_ids[0] for e in trajectory_examples(path, solved_only=False, min_reward=0.5)] == [11, 12, 14, 15]


def test_group_pairs_best_against_worst(tmp_path):
    pairs = group_pairs(_groups_file(tmp_path), min_reward_gap=0.0)
    # Group a: best 1.0 (the failed 2.0 does not count), worst 0.0; group b is a tie: no pair.
    assert [(p.chosen.token_ids[0], p.rejected.token_ids[0]) for p in pairs] == [(11, 10)]
    assert group_pairs(_groups_file(tmp_path), min_reward_gap=1.0) == []


def test_eval_samples_mask_from_turns(tmp_path):
    solution = _trajectory(0, 1.0, True)
    del solution.loss_mask[:]  # outrider eval keeps token ids, prompt length and turns only
    samples = eval_pb2.TaskSamples(checkpoint="base", task_id="t", env="e", samples=4, correct=1, solutions=[solution])
    folder = tmp_path / "eval"
    (folder / "samples").mkdir(parents=True)
    write_jsonl(folder / "samples" / "base.jsonl", [json_format.MessageToDict(samples, preserving_proto_field_name=True)])
    (example,) = eval_sample_examples(folder)
    assert example.mask == [False, False, False, True, True, False, True]


def test_step_order_is_seeded_and_covers_each_epoch():
    steps = step_order(10, 4, 2, seed=3)
    assert [len(s) for s in steps] == [4, 4, 2, 4, 4, 2]
    assert sorted(sum(steps[:3], [])) == list(range(10)) and sorted(sum(steps[3:], [])) == list(range(10))
    assert steps == step_order(10, 4, 2, seed=3) and steps != step_order(10, 4, 2, seed=4)

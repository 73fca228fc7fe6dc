"""Sample episodes of a step: which ones are picked, and what a reader sees of them."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from outrider.learner.samples import pick_samples, render_samples
from outrider.models import resolve_model
from outrider.proto.v1.trajectory_pb2 import Trajectory, TrajectoryGroup


def _group(group_id: str, rewards: list[float]) -> TrajectoryGroup:
    return TrajectoryGroup(
        group_id=group_id,
        task_id=f"{group_id}-task",
        trajectories=[Trajectory(trajectory_id=f"{group_id}/{i}", outcome_reward=r) for i, r in enumerate(rewards)],
    )


def test_best_then_worst_of_each_group_in_order_up_to_n():
    groups = [_group("a", [0.2, 1.0, -0.6, 0.7]), _group("b", [0.0, 0.5]), _group("c", [1.0, 1.0])]
    picked = [t.trajectory_id for _, t in pick_samples(groups, 3)]
    # a: best is a/1 (1.0), worst a/2 (-0.6); then b's best b/1 (0.5); the bound stops there.
    assert picked == ["a/1", "a/2", "b/1"]
    assert [t.trajectory_id for _, t in pick_samples(groups, 0)] == []
    # A group of one episode gives that episode once.
    assert [t.trajectory_id for _, t in pick_samples([_group("d", [0.3])], 4)] == ["d/0"]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_model("tiny-random-chars"))


def test_the_prompt_and_the_rest_of_the_episode_are_decoded(tokenizer):
    prompt, rest = "what is 2+3?", "4\nwrong, try again\n5"
    ids = tokenizer.encode(prompt, add_special_tokens=False) + tokenizer.encode(rest, add_special_tokens=False)
    group = TrajectoryGroup(group_id="g", task_id="math/7", trajectories=[
        Trajectory(trajectory_id="g/0", token_ids=ids, prompt_length=len(tokenizer.encode(prompt, add_special_tokens=False)),
                   outcome_reward=0.7, solved=True),
    ])
    (sample,) = render_samples(tokenizer, [group], 4)
    assert sample == {"group_id": "g", "task_id": "math/7", "reward": pytest.approx(0.7), "solved": True,
                      "turns": 0, "prompt": prompt, "completion": rest}


def test_long_texts_are_cut_keeping_the_end_of_the_prompt(tokenizer):
    prompt, rest = "x" * 30 + "the question?", "a" * 40
    ids = tokenizer.encode(prompt, add_special_tokens=False) + tokenizer.encode(rest, add_special_tokens=False)
    group = TrajectoryGroup(group_id="g", trajectories=[Trajectory(token_ids=ids, prompt_length=len(prompt))])
    (sample,) = render_samples(tokenizer, [group], 1, max_chars=20)
    assert sample["prompt"] == "…" + ("x" * 30 + "the question?")[-19:]
    assert sample["completion"] == "a" * 19 + "…"

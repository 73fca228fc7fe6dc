"""`math` and `guess-number` with scripted policies, driven through `Episode` (turn limits included)."""

from __future__ import annotations

import pytest

from outrider.envs.builtin.guess_number_env import GuessNumberEnv
from outrider.envs.builtin.math_env import MathEnv
from outrider.envs.episode import Episode
from outrider.envs.interface import ParamError, TaskNotFound


async def play(env, task_id: str, replies, max_turns: int) -> tuple[Episode, list]:
    episode = Episode(env, max_turns)
    await episode.reset(task_id, seed=0)
    steps = []
    for reply in replies:
        step = await episode.step(reply(steps) if callable(reply) else reply)
        steps.append(step)
        if step.done:
            break
    return episode, steps


# --- math ------------------------------------------------------------------------


async def test_math_policy_that_knows_the_answer_earns_full_reward():
    env = MathEnv()
    task = env.tasks("train")[3]
    episode, steps = await play(env, task.id, [f"Let me think. Answer: {task.reference}"], max_turns=3)
    assert [s.reward for s in steps] == [1.0]
    assert steps[0].done and not steps[0].truncated
    assert episode.solved and episode.total_reward == 1.0


async def test_math_wrong_answer_gets_feedback_then_a_retry_can_succeed():
    env = MathEnv()
    task = env.tasks("train")[0]
    wrong = int(task.reference) + 1
    episode, steps = await play(env, task.id, [f"Answer: {wrong}", f"\\boxed{{{task.reference}}}"], max_turns=3)
    assert [s.reward for s in steps] == [0.0, 1.0]
    feedback = steps[0].observation[0]
    assert feedback.role == "user" and f"{wrong} is not correct" in feedback.content
    assert task.reference not in feedback.content  # the answer is not revealed
    assert episode.solved


async def test_math_wrong_policy_earns_nothing_and_is_truncated_at_max_turns():
    env = MathEnv()
    task = env.tasks("test")[5]
    wrong = f"Answer: {int(task.reference) + 7}"
    episode, steps = await play(env, task.id, [wrong] * 10, max_turns=3)
    assert [s.reward for s in steps] == [0.0, 0.0, 0.0]
    assert steps[-1].done and steps[-1].truncated
    assert not episode.solved and episode.total_reward == 0.0


async def test_math_reply_without_a_number_gets_format_feedback():
    env = MathEnv()
    task = env.tasks("train")[0]
    _, steps = await play(env, task.id, ["I don't know"], max_turns=3)
    assert steps[0].reward == 0.0 and not steps[0].done
    assert "Answer: <number>" in steps[0].observation[0].content


async def test_math_first_observation_has_system_prompt_and_problem():
    env = MathEnv()
    task = env.tasks("train")[1]
    messages = await env.reset(task.id, 0)
    assert [m.role for m in messages] == ["system", "user"]
    assert messages[1].content == task.preview


def test_math_tasks_are_deterministic_and_splits_are_disjoint():
    first, second = MathEnv().tasks("train"), MathEnv().tasks("train")
    assert first == second
    assert len(first) == 1000 and len(MathEnv().tasks("test")) == 200
    train = {t.preview for t in first}
    assert not train & {t.preview for t in MathEnv().tasks("test")}


def test_math_difficulty_param_selects_levels():
    easy = MathEnv({"difficulty": "0", "num_train": "50"}).tasks("train")
    assert len(easy) == 50
    assert {t.difficulty for t in easy} == {0.0}
    # Level 0 is "a + b" with a, b in 1..20.
    for task in easy:
        a, b = (int(x) for x in task.preview.removeprefix("What is ").removesuffix("?").split(" + "))
        assert 1 <= a <= 20 and 1 <= b <= 20 and int(task.reference) == a + b
    mixed = MathEnv({"difficulty": "1-2"}).tasks("train")
    assert {t.difficulty for t in mixed} == {1.0, 2.0}


def test_math_max_operand_bounds_the_level_0_sums_and_keeps_the_splits_disjoint():
    env = MathEnv({"difficulty": "0", "max_operand": "12"})
    operands = set()
    for task in env.tasks("train") + env.tasks("test"):
        a, b = (int(x) for x in task.preview.removeprefix("What is ").removesuffix("?").split(" + "))
        assert 1 <= a <= 12 and 1 <= b <= 12 and int(task.reference) == a + b
        operands |= {a, b}
    assert operands == set(range(1, 13))  # 1000 draws from 144 problems reach every operand
    train, test = ({t.preview for t in env.tasks(split)} for split in ("train", "test"))
    assert train and test and not train & test


@pytest.mark.parametrize(
    "params", [{"difficulty": "7"}, {"difficulty": "hard"}, {"num_train": "0"}, {"num_test": "x"}, {"max_operand": "1"}]
)
def test_math_bad_params_are_rejected_with_the_param_named(params):
    with pytest.raises(ParamError, match=f"params.{next(iter(params))}"):
        MathEnv(params)


async def test_math_unknown_task_is_task_not_found():
    env = MathEnv({"num_train": "10"})
    for bad in ("train-00010", "train-1", "valid-00000"):
        with pytest.raises(TaskNotFound):
            await env.reset(bad, 0)


# --- guess-number --------------------------------------------------------------


def binary_search_policy(low: int, high: int):
    """A scripted player that knows the rules: halve the interval after each hint."""
    bounds = [low, high]

    def reply(steps) -> str:
        if steps:
            content = steps[-1].observation[0].content
            last = int(content.split()[0])
            if "higher" in content:
                bounds[0] = last + 1
            else:
                bounds[1] = last - 1
        return str((bounds[0] + bounds[1]) // 2)

    return reply


async def test_guess_binary_search_finds_the_number_with_full_reward_and_consistent_steps():
    env = GuessNumberEnv({"difficulty": "1"})
    task = env.tasks("train")[4]
    policy = binary_search_policy(1, 100)
    episode, steps = await play(env, task.id, [policy] * 10, max_turns=10)
    assert steps[-1].reward == 1.0 and steps[-1].result.solved
    assert sum(s.reward for s in steps) == 1.0
    # Binary search over 100 numbers needs at most ceil(log2(101)) = 7 guesses.
    assert len(steps) <= 7
    assert all(s.result.metrics["consistent"] == 1.0 for s in steps)
    assert steps[-1].result.process_score == 1.0


async def test_guess_feedback_says_higher_or_lower_and_process_score_is_closeness():
    env = GuessNumberEnv({"difficulty": "1"})
    task = env.tasks("train")[0]
    target = int(task.reference)
    guess = 1 if target > 1 else 100
    _, steps = await play(env, task.id, [str(guess)], max_turns=10)
    step = steps[0]
    assert step.reward == 0.0 and not step.done
    word = "higher" if target > guess else "lower"
    assert word in step.observation[0].content
    # closeness = 1 - |guess - target| / (100 - 1)
    assert step.result.process_score == 1.0 - abs(guess - target) / 99


async def test_guess_wrong_policy_earns_nothing_and_is_truncated():
    env = GuessNumberEnv({"difficulty": "0"})
    task = env.tasks("train")[2]
    target = int(task.reference)
    wrong = str(1 if target != 1 else 2)
    episode, steps = await play(env, task.id, [wrong] * 20, max_turns=5)
    assert len(steps) == 5 and steps[-1].truncated
    assert episode.total_reward == 0.0 and not episode.solved
    # Repeating a guess already ruled out is inconsistent from the second turn on.
    assert [s.result.metrics["consistent"] for s in steps] == [1.0, 0.0, 0.0, 0.0, 0.0]


async def test_guess_invalid_replies_get_feedback_and_zero_process_score():
    env = GuessNumberEnv({"difficulty": "0"})
    task = env.tasks("train")[0]
    _, steps = await play(env, task.id, ["no idea", "11"], max_turns=5)
    assert "single integer" in steps[0].observation[0].content
    assert "out of range" in steps[1].observation[0].content
    assert [s.result.process_score for s in steps] == [0.0, 0.0]
    assert [s.result.metrics["invalid"] for s in steps] == [1.0, 1.0]


def test_guess_targets_are_within_each_level_range():
    env = GuessNumberEnv()
    for task in env.tasks("train")[:300]:
        high = {0.0: 10, 1.0: 100, 2.0: 1000}[task.difficulty]
        assert 1 <= int(task.reference) <= high

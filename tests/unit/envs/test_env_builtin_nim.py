"""`nim`: the rules, the seat on turn, malformed moves, and the optimal-play metric."""

from __future__ import annotations

import pytest

from outrider.envs.builtin.nim_env import RULES, NimEnv, parse_move
from outrider.envs.interface import ParamError, TaskNotFound


def task_with(env: NimEnv, stones: int) -> str:
    return next(t.id for t in env.tasks("train") if t.reference == str(stones))


def test_tasks_are_fixed_piles_within_their_level():
    env = NimEnv({"difficulty": "0", "num_train": "50"})
    piles = [int(t.reference) for t in env.tasks("train")]
    assert piles == [int(t.reference) for t in NimEnv({"difficulty": "0", "num_train": "50"}).tasks("train")]
    assert all(5 <= p <= 10 for p in piles) and len(set(piles)) > 1
    assert all(21 <= int(t.reference) <= 40 for t in NimEnv({"difficulty": "2", "num_train": "20"}).tasks("train"))


def test_parse_move_takes_the_last_integer_and_refuses_illegal_ones():
    assert parse_move("I take 2", 7) == 2
    assert parse_move("from 7 I take 3", 7) == 3
    assert parse_move("3 then 1", 7) == 1
    assert parse_move("all of them", 7) is None
    assert parse_move("4", 7) is None and parse_move("0", 7) is None and parse_move("-1", 7) is None
    assert parse_move("3", 2) is None  # only 2 stones left


def test_parse_move_reads_a_move_spelled_out_as_a_whole_word():
    assert parse_move("Three.", 7) == 3 and parse_move("I take TWO", 7) == 2
    assert parse_move("3 then one", 7) == 1  # still the last
    assert parse_move("someone takes", 7) is None  # "one" inside a word is no move
    assert parse_move("Three.", 2) is None  # only 2 stones left
    assert parse_move("four", 7) is None


async def test_a_game_alternates_seats_and_the_last_stone_wins():
    env = NimEnv({"difficulty": "0"})
    first = await env.reset(task_with(env, 6), seed=0)
    assert first[0].content == f"{RULES} You move first. There are 6 stones. How many stones do you take (1-3)? Reply with just the number."
    # Seat 0 takes 2 (leaves 4: optimal), seat 1 takes 1, seat 0 takes 3 and wins.
    step = await env.step("2")
    assert not step.done and step.reward == 0.0 and step.metrics == {"seat": 0.0, "stones": 6.0, "optimal": 1.0}
    # The second seat's first message carries the rules: it has seen nothing before.
    assert step.observation[0].content == (
        f"{RULES} There were 6 stones and your opponent moved first. Your opponent took 2 stones; 4 remain. "
        "How many stones do you take (1-3)? Reply with just the number."
    )
    step = await env.step("1")
    assert step.metrics == {"seat": 1.0, "stones": 4.0, "optimal": 0.0}  # from 4, no move is optimal
    assert step.observation[0].content == "Your opponent took 1 stone; 3 remain. How many stones do you take (1-3)? Reply with just the number."
    step = await env.step("3")
    assert step.done and step.solved and step.reward == 1.0 and step.metrics["seat"] == 0.0


async def test_a_malformed_move_forfeits_by_default():
    env = NimEnv({"difficulty": "0"})
    await env.reset(task_with(env, 6), seed=0)
    await env.step("1")
    step = await env.step("I take five")  # seat 1 has no number: it loses at once
    assert step.done and not step.solved and step.reward == 0.0
    assert step.metrics == {"seat": 1.0, "stones": 5.0, "forfeit": 1.0}


async def test_take_one_makes_a_malformed_move_take_one_stone_and_counts_it():
    env = NimEnv({"difficulty": "0", "invalid_move": "take-one"})
    await env.reset(task_with(env, 5), seed=0)
    steps = [await env.step("no idea") for _ in range(5)]
    assert [s.done for s in steps] == [False] * 4 + [True]
    assert all(s.metrics["invalid"] == 1.0 for s in steps)
    # 5 stones, one per move: seat 0 takes the 1st, 3rd and 5th (the last): it wins.
    assert steps[-1].solved and steps[-1].metrics["seat"] == 0.0


def test_bad_params_and_tasks_are_named():
    with pytest.raises(ParamError, match="params.invalid_move: 'skip' is not one of forfeit, take-one"):
        NimEnv({"invalid_move": "skip"})


async def test_unknown_task_is_task_not_found():
    with pytest.raises(TaskNotFound):
        await NimEnv().reset("train-99999", seed=0)

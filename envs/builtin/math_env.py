"""`math`: arithmetic and word problems with verifiable numeric answers, multi-turn.

A wrong answer gets feedback ("not correct, try again" — the answer is not
revealed) and another try, until max_turns. Reward 1 for a correct answer, 0
otherwise. Tasks are generated from their id; train and test problems never
coincide (`is_held_out`).

Params: `difficulty` ("0".."3", a range "0-1", a list "0,2" or "all"; level
0 = one-digit/teen additions a 135M model sometimes gets right, 3 = two-step
word problems), `max_operand` (20: level 0 adds two numbers in 1..max_operand;
9 gives the single-digit sums the demo trains on), `num_train` (1000), `num_test`
(200).
"""

from __future__ import annotations

import functools
from fractions import Fraction

from outrider.envs.answers import extract_answer, format_number
from outrider.envs.builtin.common import (
    check_split,
    difficulty_levels,
    draw,
    parse_task_id,
    split_sizes,
    task_id,
    task_rng,
)
from outrider.envs.interface import Environment, Message, ParamError, StepResult, Task, param
from outrider.proto.v1 import env_pb2

NAME = "math"
MAX_LEVEL = 3
SYSTEM_PROMPT = (
    "Solve the math problem. You may think step by step. "
    "End your reply with 'Answer: <number>'."
)
NO_NUMBER_FEEDBACK = "I could not find a number in your reply. End your reply with 'Answer: <number>'."


def _level0(rng, max_operand: int = 20):
    a, b = rng.randint(1, max_operand), rng.randint(1, max_operand)
    return f"What is {a} + {b}?", a + b


def _level1(rng):
    kind = rng.choice(["add", "sub", "mul"])
    if kind == "add":
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        return f"What is {a} + {b}?", a + b
    if kind == "sub":
        a, b = rng.randint(20, 99), rng.randint(1, 19)
        return f"What is {a} - {b}?", a - b
    a, b = rng.randint(2, 12), rng.randint(2, 12)
    return f"What is {a} * {b}?", a * b


def _level2(rng):
    a, b, c = rng.randint(2, 30), rng.randint(2, 30), rng.randint(2, 9)
    if rng.random() < 0.5:
        return f"What is ({a} + {b}) * {c}?", (a + b) * c
    return f"What is {a} * {c} - {b}?", a * c - b


def _level3(rng):
    kind = rng.randrange(3)
    if kind == 0:
        boxes, per_box = rng.randint(3, 15), rng.randint(4, 12)
        sold = rng.randint(1, boxes * per_box - 1)
        text = (f"A shop has {boxes} boxes with {per_box} apples in each box. "
                f"It sells {sold} apples. How many apples are left?")
        return text, boxes * per_box - sold
    if kind == 1:
        price, count, paid = rng.randint(2, 9), rng.randint(2, 8), 100
        text = f"Pens cost {price} dollars each. Sam buys {count} pens and pays with {paid} dollars. How much change does Sam get?"
        return text, paid - price * count
    speed, hours, extra = rng.randint(20, 80), rng.randint(2, 6), rng.randint(5, 40)
    text = f"A train travels at {speed} km per hour for {hours} hours, then {extra} km more. How many km does it travel in total?"
    return text, speed * hours + extra


GENERATORS = (_level0, _level1, _level2, _level3)


@functools.lru_cache(maxsize=16)
def build_tasks(
    levels: tuple[int, ...], sizes: tuple[tuple[str, int], ...], max_operand: int = 20
) -> dict[str, tuple[Task, ...]]:
    """All tasks of both splits (disjoint: see `is_held_out`); level = levels[index % len(levels)]."""
    generators = (functools.partial(_level0, max_operand=max_operand), *GENERATORS[1:])
    tasks: dict[str, tuple[Task, ...]] = {}
    for split, size in sizes:
        made = []
        for index in range(size):
            level = levels[index % len(levels)]
            text, answer = draw(generators[level], task_rng(NAME, split, index), split)
            made.append(Task(task_id(split, index), split, float(level), text, format_number(Fraction(answer))))
        tasks[split] = tuple(made)
    return tasks


class MathEnv(Environment):
    def __init__(self, params=None, context=None):
        super().__init__(params, context)
        self.sizes = split_sizes(self.params, 1000, 200)
        self.levels = tuple(difficulty_levels(self.params, MAX_LEVEL))
        self.max_operand = param(self.params, "max_operand", 20, int)
        if not 2 <= self.max_operand <= 1000:
            raise ParamError(f"params.max_operand: must be in [2, 1000], got {self.max_operand}")
        self.task: Task | None = None

    @classmethod
    def default_spec(cls) -> env_pb2.EnvSpec:
        return env_pb2.EnvSpec(
            name=NAME,
            version="1.0.0",
            description="Arithmetic and word problems with numeric answers; a wrong answer gets feedback and another try.",
            python=env_pb2.PythonEntryPoint(entry_point="outrider.envs.builtin.math_env:MathEnv"),
            max_turns=3,
            reward=env_pb2.RewardSpec(max_reward=1.0),
        )

    def _all(self) -> dict[str, tuple[Task, ...]]:
        return build_tasks(self.levels, tuple(self.sizes.items()), self.max_operand)

    def tasks(self, split: str) -> list[Task]:
        return list(self._all()[check_split(split)])

    async def reset(self, task_id_: str, seed: int) -> list[Message]:
        split, index = parse_task_id(task_id_, self.sizes)
        self.task = self._all()[split][index]
        return [Message("system", SYSTEM_PROMPT), Message("user", self.task.preview)]

    async def step(self, action: str) -> StepResult:
        answer = extract_answer(action).number
        if answer is None:
            return StepResult([Message("user", NO_NUMBER_FEEDBACK)], reward=0.0, done=False, metrics={"no_answer": 1.0})
        if answer.value == Fraction(self.task.reference):
            return StepResult([], reward=1.0, done=True, solved=True, metrics={"correct": 1.0})
        feedback = f"{format_number(answer.value)} is not correct. Check your work and try again."
        return StepResult([Message("user", feedback)], reward=0.0, done=False, metrics={"correct": 0.0})

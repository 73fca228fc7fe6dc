"""`guess-number`: find a hidden integer with "higher"/"lower" feedback after each guess.

A text game with step-level feedback and process signals. Each turn the policy
replies with a guess (the last integer in its reply); the environment answers
"higher", "lower" or ends the episode with reward 1 when the guess is right.

Process signal of a step (StepInfo.process_score), in [0, 1]:
    closeness_t = 1 - |guess_t - target| / (high - low)
so a guess that moves closer scores higher; the reward service can shape
r_t = s_t - s_{t-1} (the closeness improvement, also reported as the metric
`improvement`). A reply without a number, or out of range, scores 0 and gets
feedback. The metric `consistent` is 1 when the guess respects every earlier
hint (a binary-search player is always consistent).

Params: `difficulty` (level 0: 1-10, 1: 1-100, 2: 1-1000; "all" by default),
`num_train` (1000), `num_test` (200).
"""

from __future__ import annotations

import functools
import re

from outrider.envs.builtin.common import check_split, difficulty_levels, parse_task_id, split_sizes, task_id, task_rng
from outrider.envs.interface import Environment, Message, StepResult, Task
from outrider.proto.v1 import env_pb2

NAME = "guess-number"
RANGES = ((1, 10), (1, 100), (1, 1000))
_INTEGER = re.compile(r"-?\d+")


@functools.lru_cache(maxsize=16)
def build_tasks(levels: tuple[int, ...], sizes: tuple[tuple[str, int], ...]) -> dict[str, tuple[Task, ...]]:
    tasks = {}
    for split, size in sizes:
        made = []
        for index in range(size):
            level = levels[index % len(levels)]
            low, high = RANGES[level]
            target = task_rng(NAME, split, index).randint(low, high)
            made.append(Task(task_id(split, index), split, float(level), prompt(low, high), str(target)))
        tasks[split] = tuple(made)
    return tasks


def prompt(low: int, high: int) -> str:
    return (
        f"I am thinking of an integer between {low} and {high}. Guess it. "
        "After each guess I will tell you whether my number is higher or lower. "
        "Reply with just your guess."
    )


class GuessNumberEnv(Environment):
    def __init__(self, params=None, context=None):
        super().__init__(params, context)
        self.sizes = split_sizes(self.params, 1000, 200)
        self.levels = tuple(difficulty_levels(self.params, len(RANGES) - 1))
        self.target = 0
        self.low = self.high = 0
        self.feasible = (0, 0)
        self.last_closeness = 0.0

    @classmethod
    def default_spec(cls) -> env_pb2.EnvSpec:
        return env_pb2.EnvSpec(
            name=NAME,
            version="1.0.0",
            description="Guess a hidden integer; after each guess: higher or lower. Gives a process signal per step.",
            python=env_pb2.PythonEntryPoint(entry_point="outrider.envs.builtin.guess_number_env:GuessNumberEnv"),
            max_turns=10,
            reward=env_pb2.RewardSpec(max_reward=1.0, process_signals=True),
        )

    def _all(self):
        return build_tasks(self.levels, tuple(self.sizes.items()))

    def tasks(self, split: str) -> list[Task]:
        return list(self._all()[check_split(split)])

    async def reset(self, task_id_: str, seed: int) -> list[Message]:
        split, index = parse_task_id(task_id_, self.sizes)
        task = self._all()[split][index]
        self.low, self.high = RANGES[int(task.difficulty)]
        self.target = int(task.reference)
        self.feasible = (self.low, self.high)
        self.last_closeness = 0.0
        return [Message("user", task.preview)]

    async def step(self, action: str) -> StepResult:
        numbers = _INTEGER.findall(action)
        if not numbers:
            return self._invalid("Reply with a single integer: your guess.")
        guess = int(numbers[-1])
        if not self.low <= guess <= self.high:
            return self._invalid(f"{guess} is out of range: my number is between {self.low} and {self.high}.")
        closeness = 1.0 - abs(guess - self.target) / (self.high - self.low)
        metrics = {
            "closeness": closeness,
            "improvement": closeness - self.last_closeness,
            "consistent": float(self.feasible[0] <= guess <= self.feasible[1]),
        }
        self.last_closeness = closeness
        if guess == self.target:
            return StepResult([], reward=1.0, done=True, solved=True, process_score=1.0, metrics=metrics)
        if guess < self.target:
            self.feasible = (max(self.feasible[0], guess + 1), self.feasible[1])
            hint = f"{guess} is too low: my number is higher."
        else:
            self.feasible = (self.feasible[0], min(self.feasible[1], guess - 1))
            hint = f"{guess} is too high: my number is lower."
        return StepResult([Message("user", hint)], reward=0.0, done=False, process_score=closeness, metrics=metrics)

    def _invalid(self, feedback: str) -> StepResult:
        return StepResult([Message("user", feedback)], reward=0.0, done=False, process_score=0.0, metrics={"invalid": 1.0})

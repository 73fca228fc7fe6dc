"""An environment without held-out tasks, for `outrider eval`'s bad-input tests."""

from __future__ import annotations

from outrider.envs.interface import Environment, Message, StepResult, Task


class TrainOnlyEnv(Environment):
    def tasks(self, split: str) -> list[Task]:
        return [Task(f"train-{i}", "train", 0.0, f"Say {i}.") for i in range(4)] if split == "train" else []

    async def reset(self, task_id: str, seed: int) -> list[Message]:
        return [Message("user", "Say something.")]

    async def step(self, action: str) -> StepResult:
        return StepResult([], reward=0.0, done=True)


SPEC = """name: train-only
version: 1.0.0
description: Tasks for training only; its test split is empty.
python:
  entry_point: testkit.eval_env:TrainOnlyEnv
max_turns: 1
reward:
  max_reward: 1.0
"""

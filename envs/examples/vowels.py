"""`vowels`: a synthetic one-turn task on which a tiny random model shows exploration effects.

The reply is scored by the share of vowels among its letters (reward in [0, 1], dense:
a random model already writes some vowels), and counts as solved when that share
reaches `threshold`. `outrider experiment --scale tiny` trains the character-level
random model `tiny-random-chars` on it (docs/research.md) because the two phenomena the
exploration recipes measure show within a few learner steps there:

* the reward is raised by moving probability onto ~10 of ~100 output characters, so the
  token entropy the policy starts with (spread over every character) must fall as it
  learns: entropy collapse in miniature, with nothing else to learn first;
* `solved` is a threshold on a sum of per-character choices, so at the start many tasks
  are solved at some k of 8 samples but rarely at k = 1: pass@1 and pass@k can move
  apart, which is what the PSR/NSR comparison is about.

Params (EnvSpec `params`): `threshold` (default 0.5), `num_train` (64), `num_test` (32).
"""

from __future__ import annotations

from outrider.envs.interface import Environment, Message, ParamError, StepResult, Task, TaskNotFound, param

VOWELS = frozenset("aeiouAEIOU")


def vowel_share(text: str) -> float:
    """Share of vowels among the ASCII letters of `text` (0 when it has none)."""
    letters = [c for c in text if c.isascii() and c.isalpha()]
    return sum(c in VOWELS for c in letters) / len(letters) if letters else 0.0


class VowelsEnv(Environment):
    """One turn: reward = vowel share of the reply's letters; solved when it reaches `threshold`."""

    def __init__(self, params=None, context=None):
        super().__init__(params, context)
        self.threshold = param(self.params, "threshold", 0.5)
        if not 0.0 < self.threshold <= 1.0:
            raise ParamError(f"params.threshold: {self.threshold} is not in (0, 1]")
        self.counts = {"train": param(self.params, "num_train", 64), "test": param(self.params, "num_test", 32)}
        for split, count in self.counts.items():
            if count < 1:
                raise ParamError(f"params.num_{split}: {count} is not a positive task count")

    def tasks(self, split: str) -> list[Task]:
        return [Task(f"{split}-{i}", split, 0.0, self._prompt(split, i)) for i in range(self.counts.get(split, 0))]

    @staticmethod
    def _prompt(split: str, index: int) -> str:
        return f"Write a word. #{split}{index}"

    async def reset(self, task_id: str, seed: int) -> list[Message]:
        split, _, index = task_id.partition("-")
        if split not in self.counts or not index.isdigit() or int(index) >= self.counts[split]:
            raise TaskNotFound(f"no task {task_id!r}: vowels has train-0..train-{self.counts['train'] - 1} "
                               f"and test-0..test-{self.counts['test'] - 1}")
        return [Message("user", self._prompt(split, int(index)))]

    async def step(self, action: str) -> StepResult:
        share = vowel_share(action)
        return StepResult([], reward=share, done=True, solved=share >= self.threshold)

"""A learnable toy multi-turn environment for end-to-end tests with a tiny random model.

`vowels`: each turn, the reward is the share of vowels among the letters of
the reply, scaled so that an episode's rewards sum to at most 1; the
environment reports the share back and asks again. A randomly initialised
model already writes some letters, so the reward is dense from the start,
and RL can raise it by favouring vowel-heavy tokens — something a policy
that does not learn cannot do.
"""

from __future__ import annotations

from outrider.envs.interface import Environment, Message, StepResult, Task

VOWELS = set("aeiouAEIOU")
TURNS = 2


def vowel_share(text: str) -> float:
    letters = [c for c in text if c.isascii() and c.isalpha()]
    return sum(c in VOWELS for c in letters) / len(letters) if letters else 0.0


class VowelEnv(Environment):
    def tasks(self, split: str) -> list[Task]:
        count = 64 if split == "train" else 16
        return [Task(f"{split}-{i}", split, 0.0, f"Say something. #{split}{i}") for i in range(count)]

    async def reset(self, task_id: str, seed: int) -> list[Message]:
        split, index = task_id.split("-")
        self.turn = 0
        return [Message("user", f"Say something. #{split}{index}")]

    async def step(self, action: str) -> StepResult:
        self.turn += 1
        share = vowel_share(action)
        done = self.turn >= TURNS
        feedback = [] if done else [Message("user", f"Vowel share {share:.2f}. Again.")]
        return StepResult(feedback, reward=share / TURNS, done=done, solved=share >= 0.5, process_score=share)


SPEC = f"""name: vowels
version: 1.0.0
description: Toy task for tests; reward = vowel share of the reply's letters.
python:
  entry_point: testkit.toy_env:VowelEnv
max_turns: {TURNS}
reward:
  max_reward: 1.0
  process_signals: true
"""

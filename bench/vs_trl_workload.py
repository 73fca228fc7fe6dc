"""The workload of bench/vs_trl.py, defined once for Outrider and TRL's GRPOTrainer.

Both sides import this module: the Outrider environment (bench/vs_trl_env.py,
run by the env service in the project's .venv) and the TRL runner
(bench/vs_trl_trl.py, run in TRL's own venv). So it is pure standard-library
Python: no outrider, torch or transformers import, here or below.

The task: "What is a + b? Answer with just the number." with a, b drawn from
[0, 50) by a seeded generator, asked as one user chat message (no system
message: each side renders it with the model's own chat template). Reward 1.0
when the completion's answer equals a + b, else 0.0; `parse_answer` is the
one rule that decides what "the answer" is.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass
from decimal import Decimal

PROMPT_TEMPLATE = "What is {a} + {b}? Answer with just the number."
OPERAND_LIMIT = 50
"""Operands are drawn from [0, OPERAND_LIMIT)."""

# A number as a model writes a sum: optional minus sign, digits, optional decimal part.
# Thousands separators are not needed (sums are below 100) and are not accepted.
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Problem:
    a: int
    b: int

    @property
    def prompt(self) -> str:
        """The exact text of the user message both systems send."""
        return PROMPT_TEMPLATE.format(a=self.a, b=self.b)

    @property
    def answer(self) -> int:
        return self.a + self.b


def problems(count: int, seed: int) -> list[Problem]:
    """The first `count` problems of the stream seeded by `seed` (the same list on every machine).

    `random.Random(int)` is Mersenne Twister seeded from the integer, stable
    across Python versions and platforms, so both venvs draw the same list.
    """
    rng = random.Random(seed)
    return [Problem(rng.randrange(OPERAND_LIMIT), rng.randrange(OPERAND_LIMIT)) for _ in range(count)]


def parse_answer(completion: str) -> Decimal | None:
    """The completion's answer: the LAST number in it, or None when it has none.

    The last number, because the prompt asks for just the number and a model
    that explains itself ends with the result ("17 + 25 = 42") far more often
    than it starts with it. `42.0` and `42.` count as 42; `-3` is negative;
    `1,234` reads as 234 (no thousands separators in this task).
    """
    numbers = _NUMBER.findall(completion)
    return Decimal(numbers[-1]) if numbers else None


def reward(completion: str, answer: int) -> float:
    """1.0 when `parse_answer(completion)` equals `answer` exactly, else 0.0 (no answer: 0.0)."""
    parsed = parse_answer(completion)
    return 1.0 if parsed is not None and parsed == answer else 0.0


@dataclass(frozen=True)
class Workload:
    """Everything both systems must agree on; `to_dict`/`from_dict` carry it across the venv boundary."""

    model: str
    """Outrider built-in model name (the bench resolves it to an HF folder for TRL)."""
    group_size: int = 8
    """G: generations per prompt."""
    prompts_per_step: int = 8
    """Prompts (groups) per optimizer step."""
    max_new_tokens: int = 128
    temperature: float = 1.0
    lr: float = 1e-6
    beta: float = 0.0
    """KL coefficient; 0: no KL term, no reference model."""
    dtype: str = "fp32"
    num_prompts: int = 1024
    """Size of the prompt set both systems sample from."""
    seed: int = 0
    """Seed of the prompt set (and of each system's sampler)."""

    @property
    def samples_per_step(self) -> int:
        return self.group_size * self.prompts_per_step

    def problems(self) -> list[Problem]:
        return problems(self.num_prompts, self.seed)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Workload:
        return cls(**data)


SCALES: dict[str, Workload] = {
    # The comparison of issue 11: SmolLM2-135M-Instruct, 8 prompts x 8 generations, 128 new tokens.
    "full": Workload(model="smollm2-135m-instruct"),
    # Smoke test: Outrider's 2-layer random model with SmolLM2's tokenizer, few tokens.
    "tiny": Workload(model="tiny-random", group_size=4, prompts_per_step=2, max_new_tokens=16),
}

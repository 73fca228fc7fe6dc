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
"""Operands are drawn from [0, OPERAND_LIMIT) unless a workload says otherwise."""

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


def problems(count: int, seed: int, operand_limit: int = OPERAND_LIMIT,
             exclude: frozenset[tuple[int, int]] = frozenset()) -> list[Problem]:
    """The first `count` problems of the stream seeded by `seed`, operands in [0, operand_limit),
    skipping the pairs (a, b) in `exclude` (the same list on every machine).

    `random.Random(int)` is Mersenne Twister seeded from the integer, stable
    across Python versions and platforms, so both venvs draw the same list.
    """
    if exclude and len(exclude) >= operand_limit**2:
        raise ValueError(f"every one of the {operand_limit**2} problems is excluded")
    rng = random.Random(seed)
    drawn: list[Problem] = []
    while len(drawn) < count:
        problem = Problem(rng.randrange(operand_limit), rng.randrange(operand_limit))
        if (problem.a, problem.b) not in exclude:
            drawn.append(problem)
    return drawn


def distinct_problems(count: int, seed: int, operand_limit: int = OPERAND_LIMIT) -> list[Problem]:
    """The first `count` distinct problems of the stream seeded by `seed`."""
    if count > operand_limit**2:
        raise ValueError(f"{count} distinct problems asked for, but operands below {operand_limit} make only {operand_limit**2}")
    rng = random.Random(seed)
    seen: dict[tuple[int, int], Problem] = {}
    while len(seen) < count:
        problem = Problem(rng.randrange(operand_limit), rng.randrange(operand_limit))
        seen.setdefault((problem.a, problem.b), problem)
    return list(seen.values())


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


TEST_SEED_OFFSET = 1_000_003
"""The held-out set's seed is the training set's plus this."""


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
    operand_limit: int = OPERAND_LIMIT
    """Operands a, b are drawn from [0, operand_limit)."""
    test_prompts: int = 16
    """Size of the held-out set: distinct problems that the training set never contains
    (bench/time_to_quality.py evaluates on it)."""

    @property
    def samples_per_step(self) -> int:
        return self.group_size * self.prompts_per_step

    def problems(self) -> list[Problem]:
        """The training set: `num_prompts` draws that never pose a held-out problem."""
        held_out = frozenset((p.a, p.b) for p in self.test_problems())
        return problems(self.num_prompts, self.seed, self.operand_limit, held_out)

    def test_problems(self) -> list[Problem]:
        """The held-out set: `test_prompts` distinct problems of a seed of its own, excluded from training."""
        return distinct_problems(self.test_prompts, self.seed + TEST_SEED_OFFSET, self.operand_limit)

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

TIME_TO_QUALITY: dict[str, Workload] = {
    # bench/time_to_quality.py: sums of operands below 13, which SmolLM2-135M-Instruct gets right
    # about a fifth of the time (held-out pass@1 0.211, 64 problems x 4 samples, 2026-12-01): the
    # learnable zone's lower end, where most groups of 8 still hold a success. The demo's rate and
    # batch (6 x 8, lr 5e-5).
    "full": Workload(model="smollm2-135m-instruct", prompts_per_step=6, max_new_tokens=64, lr=5e-5,
                     operand_limit=13, test_prompts=64),
    "tiny": Workload(model="tiny-random", group_size=4, prompts_per_step=2, max_new_tokens=16, lr=1e-4,
                     operand_limit=13, test_prompts=4),
}

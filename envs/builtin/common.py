"""Helpers shared by the generated built-in environments: task ids, splits, difficulty."""

from __future__ import annotations

import random
import zlib
import re
from collections.abc import Mapping

from outrider.envs.interface import ParamError, TaskNotFound, param

SPLITS = ("train", "test")
_TASK_ID = re.compile(r"^(train|test)-(\d{5})$")


def task_id(split: str, index: int) -> str:
    return f"{split}-{index:05d}"


def parse_task_id(task_id_: str, sizes: Mapping[str, int]) -> tuple[str, int]:
    """("train", 42) for "train-00042"; TaskNotFound unless the split has that many tasks."""
    match = _TASK_ID.match(task_id_)
    if match is None:
        raise TaskNotFound(f"task id {task_id_!r} is not of the form train-NNNNN or test-NNNNN")
    split, index = match.group(1), int(match.group(2))
    if index >= sizes[split]:
        raise TaskNotFound(f"task {task_id_!r} does not exist: the {split} split has {sizes[split]} tasks")
    return split, index


def check_split(split: str) -> str:
    split = split or "train"
    if split not in SPLITS:
        raise TaskNotFound(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    return split


def difficulty_levels(params: Mapping[str, str], max_level: int) -> list[int]:
    """Levels to draw tasks from: params.difficulty is "2", "0-1", "0,2" or "all" (default)."""
    text = params.get("difficulty", "all").strip()
    if text in ("all", "mixed", ""):
        return list(range(max_level + 1))
    try:
        if "-" in text:
            low, high = (int(part) for part in text.split("-", 1))
            levels = list(range(low, high + 1))
        else:
            levels = sorted({int(part) for part in text.split(",")})
    except ValueError:
        levels = []
    if not levels or levels[0] < 0 or levels[-1] > max_level:
        raise ParamError(f"params.difficulty: {text!r} is not a level, range or list within 0-{max_level}")
    return levels


def split_sizes(params: Mapping[str, str], train: int, test: int) -> dict[str, int]:
    sizes = {"train": param(params, "num_train", train, int), "test": param(params, "num_test", test, int)}
    for split, size in sizes.items():
        if not 1 <= size <= 1_000_000:
            raise ParamError(f"params.num_{split}: must be in [1, 1000000], got {size}")
    return sizes


def task_rng(env: str, split: str, index: int) -> random.Random:
    """The generator of one task: the same (env, split, index) always gives the same task."""
    # String seeds are hashed with SHA-512 by `random`: stable across runs and machines.
    return random.Random(f"outrider/{env}/{split}/{index}")


def is_held_out(text: str) -> bool:
    """Whether a generated problem belongs to the test split (a fifth of all problems).

    Splitting the problem space by a hash of the text keeps train and test
    disjoint for any split sizes and difficulty levels.
    """
    return zlib.crc32(text.encode()) % 5 == 0


def draw(generate, rng: random.Random, split: str):
    """Draw problems with `generate(rng) -> (text, ...)` until one belongs to `split`."""
    for _ in range(10_000):
        problem = generate(rng)
        if is_held_out(problem[0]) == (split == "test"):
            return problem
    name = getattr(generate, "func", generate).__name__
    raise RuntimeError(f"{name} found no {split} problem in 10000 draws")

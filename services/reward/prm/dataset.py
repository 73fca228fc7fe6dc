"""Labelled data for training PRMs/ORMs, and a synthetic set built from arithmetic tasks.

File formats (JSON Lines, one object per line):

* step records  `{"prompt": str, "steps": [str, ...], "labels": [0|1, ...]}` —
  per-step classification; step t with the prompt and steps < t is the prefix.
  A flat record `{"prefix": str, "step": str, "label": 0|1}` is one step with
  its prefix as the prompt.
* pair records  `{"prompt": str, "chosen": [str, ...], "rejected": [str, ...]}` —
  preference pairs for a Bradley–Terry outcome model (read at the last step).

The synthetic set: multi-step arithmetic problems ("Compute ((12 + 7) - 3) + 5.")
solved one operation per step ("12 + 7 = 19"). A corrupted solution has one
step with a wrong result (another number in [10, 99]) and stops at that step,
as PRM800K labelling stops at the first error; its steps are labelled 1 up to
the wrong one, which is 0. Pairs put a
correct solution against one that is corrupted and then carried on correctly
from the wrong value (so its final answer is wrong; every number stays in
[10, 99], so only arithmetic tells the two apart).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from outrider.proto.chat import Message
from outrider.services.reward.prm.segmentation import StepSpan

STEP_DELIMITER = "\n\n"
# Addition and subtraction: a 2-layer model learns to check them in ~1000 steps;
# checking products from scratch takes far longer than a CPU test allows.
OPS = ("+", "-")
# Every number in a step has two digits (operands 1..9 excepted), so the digits a
# step check needs sit at fixed offsets from the separator: a tiny model learns it fast.
MIN_VALUE, MAX_VALUE = 10, 99


@dataclass(frozen=True)
class StepsRecord:
    """A prompt, its solution steps and one 0/1 label per step."""

    prompt: str
    steps: tuple[str, ...]
    labels: tuple[int, ...]


@dataclass(frozen=True)
class PairRecord:
    """The same prompt solved well (`chosen`) and badly (`rejected`)."""

    prompt: str
    chosen: tuple[str, ...]
    rejected: tuple[str, ...]


def as_conversation(prompt: str, steps: Sequence[str]) -> tuple[list[Message], list[StepSpan]]:
    """[user: prompt, assistant: steps joined by a blank line] and the span of each step."""
    spans, offset = [], 0
    for text in steps:
        spans.append(StepSpan(1, offset, offset + len(text)))
        offset += len(text) + len(STEP_DELIMITER)
    return [Message("user", prompt), Message("assistant", STEP_DELIMITER.join(steps))], spans


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b


def arithmetic_problem(rng: random.Random) -> tuple[str, list[tuple[int, str, int]]]:
    """A chain of 2-4 operations with every intermediate value in [10, 99]."""
    value = rng.randint(MIN_VALUE, 20)
    expr, ops = str(value), []
    for _ in range(rng.randint(2, 4)):
        while True:
            op, operand = rng.choice(OPS), rng.randint(1, 9)
            result = _apply(value, op, operand)
            if MIN_VALUE <= result <= MAX_VALUE:
                break
        expr = f"({expr}) {op} {operand}" if ops else f"{expr} {op} {operand}"
        ops.append((value, op, operand))
        value = result
    return f"Compute {expr}.", ops


def _wrong(rng: random.Random, value: int) -> int:
    """A wrong result: any other number in [10, 99], so its length gives nothing away."""
    while True:
        wrong = rng.randint(MIN_VALUE, MAX_VALUE)
        if wrong != value:
            return wrong


def _chain(ops: list[tuple[int, str, int]], corrupt_at: int | None, wrong: int | None) -> tuple[list[str], list[int], list[int]]:
    """Steps, labels and results of the solution with step `corrupt_at` giving `wrong`, carried on from there."""
    steps, labels, results, value = [], [], [], ops[0][0]
    for index, (_, op, operand) in enumerate(ops):
        result = wrong if index == corrupt_at else _apply(value, op, operand)
        steps.append(f"{value} {op} {operand} = {result}")
        labels.append(0 if corrupt_at is not None and index >= corrupt_at else 1)
        results.append(result)
        value = result
    return steps, labels, results


def _corrupted(ops: list[tuple[int, str, int]], rng: random.Random, carry_on: bool) -> tuple[list[str], list[int]]:
    """A solution with one wrong result. Carried on, every later result must stay in
    [10, 99] too, or an out-of-range number would give the error away."""
    while True:
        at = rng.randrange(len(ops))
        correct = _chain(ops, None, None)[2][at]
        steps, labels, results = _chain(ops, at, _wrong(rng, correct))
        if not carry_on:
            return steps[: at + 1], labels[: at + 1]
        if all(MIN_VALUE <= r <= MAX_VALUE for r in results):
            return steps, labels


def make_step_records(n: int, seed: int, corrupt_fraction: float = 0.5, exclude: Iterable[str] = ()) -> list[StepsRecord]:
    """`n` solved problems, a `corrupt_fraction` of them with a wrong step; prompts in `exclude` are skipped."""
    rng, skip, records = random.Random(seed), set(exclude), []
    while len(records) < n:
        prompt, ops = arithmetic_problem(rng)
        if prompt in skip:
            continue
        if rng.random() < corrupt_fraction:
            steps, labels = _corrupted(ops, rng, carry_on=False)
        else:
            steps, labels, _ = _chain(ops, None, None)
        records.append(StepsRecord(prompt, tuple(steps), tuple(labels)))
    return records


def make_pair_records(n: int, seed: int, exclude: Iterable[str] = ()) -> list[PairRecord]:
    """`n` (correct, corrupted-then-continued) solution pairs."""
    rng, skip, records = random.Random(seed), set(exclude), []
    while len(records) < n:
        prompt, ops = arithmetic_problem(rng)
        if prompt in skip:
            continue
        chosen = _chain(ops, None, None)[0]
        rejected = _corrupted(ops, rng, carry_on=True)[0]
        records.append(PairRecord(prompt, tuple(chosen), tuple(rejected)))
    return records


def write_jsonl(path: str | Path, records: Iterable[StepsRecord | PairRecord]) -> int:
    count = 0
    with open(path, "w") as out:
        for record in records:
            row = {"prompt": record.prompt}
            if isinstance(record, StepsRecord):
                row |= {"steps": list(record.steps), "labels": list(record.labels)}
            else:
                row |= {"chosen": list(record.chosen), "rejected": list(record.rejected)}
            out.write(json.dumps(row) + "\n")
            count += 1
    return count


class DatasetError(ValueError):
    """A data file line is malformed; the message names the file and line."""


def _strings(value, where: str, field: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise DatasetError(f"{where}: `{field}` must be a non-empty list of non-blank strings")
    return tuple(value)


def _parse_step_record(row: dict, where: str) -> StepsRecord:
    if "prefix" in row:
        if not isinstance(row.get("step"), str) or row.get("label") not in (0, 1):
            raise DatasetError(f"{where}: a flat record needs `prefix`, `step` (string) and `label` (0 or 1)")
        return StepsRecord(str(row["prefix"]), (row["step"],), (int(row["label"]),))
    steps = _strings(row.get("steps"), where, "steps")
    labels = row.get("labels")
    if not isinstance(labels, list) or len(labels) != len(steps) or any(label not in (0, 1) for label in labels):
        raise DatasetError(f"{where}: `labels` must be a list of 0/1 with one label per step ({len(steps)})")
    return StepsRecord(str(row.get("prompt", "")), steps, tuple(int(label) for label in labels))


def _parse_pair_record(row: dict, where: str) -> PairRecord:
    return PairRecord(str(row.get("prompt", "")), _strings(row.get("chosen"), where, "chosen"), _strings(row.get("rejected"), where, "rejected"))


def _rows(path: str | Path):
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DatasetError(f"{path}: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DatasetError(f"{where}: expected a JSON object")
        yield row, where


def load_step_records(path: str | Path) -> list[StepsRecord]:
    records = [_parse_step_record(row, where) for row, where in _rows(path)]
    if not records:
        raise DatasetError(f"{path}: no records")
    return records


def load_pair_records(path: str | Path) -> list[PairRecord]:
    records = [_parse_pair_record(row, where) for row, where in _rows(path)]
    if not records:
        raise DatasetError(f"{path}: no records")
    return records

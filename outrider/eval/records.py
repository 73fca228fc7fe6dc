"""Per-(checkpoint, task) evaluation records and their storage.

`outrider eval` appends one `TaskRecord` JSON line to `EVAL_DIR/records/<checkpoint>.jsonl`
as soon as a task's samples are done (and fsyncs it), so an interrupted evaluation can
resume without re-sampling; `load_records` reads them back for the analysis.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Solution", "TaskRecord", "load_records", "records_dir", "RECORDS_DIR"]

RECORDS_DIR = "records"


@dataclass(frozen=True)
class Solution:
    """One correct completion of a task, scored under the base model."""

    tokens: int
    """Completion tokens scored (the assistant tokens of the episode)."""
    base_logprob_sum: float
    """Σ log π_base(token | context) over those tokens; perplexity = exp(−sum / tokens)."""

    def to_json(self) -> dict:
        return {"tokens": self.tokens, "base_logprob_sum": self.base_logprob_sum}

    @classmethod
    def from_json(cls, data: dict, where: str = "solution") -> Solution:
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
        tokens = _int(data, "tokens", where)
        if tokens < 1:
            raise ValueError(f"{where}: field 'tokens' must be >= 1, got {tokens}")
        logprob = _float(data, "base_logprob_sum", where)
        if logprob > 0:
            raise ValueError(f"{where}: field 'base_logprob_sum' must be <= 0 (a sum of log-probabilities), got {logprob}")
        return cls(tokens=tokens, base_logprob_sum=logprob)


@dataclass(frozen=True)
class TaskRecord:
    """What `outrider eval` stores per (checkpoint, task) once that task's samples are done."""

    checkpoint: str
    """The checkpoint's name on the command line (e.g. "base", "rl")."""
    task_id: str
    env: str
    samples: int
    """Episodes that finished without an infrastructure error (the n of pass@k)."""
    correct: int
    """Of those, solved within the episode (any turn)."""
    first_try: int
    """Of those, solved on the first turn."""
    errors: int
    """Episodes that ended with an infrastructure error (not counted in samples)."""
    solutions: tuple[Solution, ...] = ()
    """Correct completions scored under base (may be a seeded subsample, at most `max_solutions`)."""
    entropies: tuple[float, ...] = ()
    """Per-token entropies (nats) of sampled completions under this checkpoint, a seeded
    subsample of at most `max_entropy_tokens`."""
    seconds: float = 0.0
    """Wall time of this task's sampling."""

    def to_json(self) -> dict:
        return {
            "checkpoint": self.checkpoint,
            "task_id": self.task_id,
            "env": self.env,
            "samples": self.samples,
            "correct": self.correct,
            "first_try": self.first_try,
            "errors": self.errors,
            "solutions": [s.to_json() for s in self.solutions],
            "entropies": list(self.entropies),
            "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, data: dict) -> TaskRecord:
        """Validate and build a record; a bad value raises ValueError naming its field."""
        if not isinstance(data, dict):
            raise ValueError(f"task record: expected an object, got {type(data).__name__}")
        where = "task record"
        strings = {name: _str(data, name, where) for name in ("checkpoint", "task_id", "env")}
        where = f"task record {strings['checkpoint']}/{strings['task_id']}"
        counts = {name: _int(data, name, where) for name in ("samples", "correct", "first_try", "errors")}
        for name, value in counts.items():
            if value < 0:
                raise ValueError(f"{where}: field '{name}' must be >= 0, got {value}")
        if counts["correct"] > counts["samples"]:
            raise ValueError(f"{where}: field 'correct' ({counts['correct']}) exceeds 'samples' ({counts['samples']})")
        if counts["first_try"] > counts["correct"]:
            raise ValueError(f"{where}: field 'first_try' ({counts['first_try']}) exceeds 'correct' ({counts['correct']})")
        solutions = data.get("solutions", [])
        if not isinstance(solutions, list):
            raise ValueError(f"{where}: field 'solutions' must be a list, got {type(solutions).__name__}")
        entropies = data.get("entropies", [])
        if not isinstance(entropies, list):
            raise ValueError(f"{where}: field 'entropies' must be a list, got {type(entropies).__name__}")
        for i, h in enumerate(entropies):
            if isinstance(h, bool) or not isinstance(h, (int, float)) or not math.isfinite(h) or h < 0:
                raise ValueError(f"{where}: field 'entropies[{i}]' must be a finite number >= 0, got {h!r}")
        seconds = _float(data, "seconds", where) if "seconds" in data else 0.0
        return cls(
            **strings,
            **counts,
            solutions=tuple(Solution.from_json(s, f"{where}, solutions[{i}]") for i, s in enumerate(solutions)),
            entropies=tuple(float(h) for h in entropies),
            seconds=seconds,
        )


def records_dir(eval_dir: Path) -> Path:
    return Path(eval_dir) / RECORDS_DIR


def load_records(eval_dir: Path) -> dict[str, dict[str, TaskRecord]]:
    """checkpoint → task_id → record, from `eval_dir/records/*.jsonl`.

    A line that does not parse as JSON is tolerated only as the file's last line (a
    write cut short by a kill; the sampler re-runs that task); anywhere else it is an
    error naming the file and line. A later line for the same task wins (a re-run after
    a partial write appends a fresh record). The checkpoint name comes from each
    record; a record whose checkpoint differs from its file's name is an error.
    """
    out: dict[str, dict[str, TaskRecord]] = {}
    folder = records_dir(eval_dir)
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.jsonl")):
        lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
        # The text after the last newline is an unfinished line (or empty).
        complete, tail = lines[:-1], lines[-1]
        table = out.setdefault(path.stem, {})
        for number, line in enumerate(complete, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as err:
                if number == len(complete) and not tail.strip():
                    continue
                raise ValueError(f"{path}:{number}: not a JSON line ({err.msg})") from None
            try:
                record = TaskRecord.from_json(data)
            except ValueError as err:
                raise ValueError(f"{path}:{number}: {err}") from None
            if record.checkpoint != path.stem:
                raise ValueError(f"{path}:{number}: record of checkpoint {record.checkpoint!r} in the file of {path.stem!r}")
            table[record.task_id] = record
        if tail.strip():
            try:
                data = json.loads(tail)
            except json.JSONDecodeError:
                continue  # truncated by a kill mid-write
            try:
                record = TaskRecord.from_json(data)
            except ValueError as err:
                raise ValueError(f"{path}:{len(complete) + 1}: {err}") from None
            if record.checkpoint == path.stem:
                table[record.task_id] = record
    return out


def _field(data: dict, name: str, where: str):
    if name not in data:
        raise ValueError(f"{where}: missing field '{name}'")
    return data[name]


def _str(data: dict, name: str, where: str) -> str:
    value = _field(data, name, where)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: field '{name}' must be a non-empty string, got {value!r}")
    return value


def _int(data: dict, name: str, where: str) -> int:
    value = _field(data, name, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: field '{name}' must be an integer, got {value!r}")
    return value


def _float(data: dict, name: str, where: str) -> float:
    value = _field(data, name, where)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: field '{name}' must be a finite number, got {value!r}")
    return float(value)

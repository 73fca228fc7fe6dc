"""Per-task statistics as columns of numpy arrays, so sampling is vectorised.

Row i is one task (env, task_id). Pass rates use a ring buffer of each task's
last `window` attempts (1 pass, 0 fail, −1 empty). A task's statistics travel
(to Redis, to a checkpoint) as a `TaskRecord`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TaskInfo:
    """What a pool knows about a task."""

    env: str
    task_id: str
    difficulty: float = 0.0
    split: str = "train"
    preview: str = ""
    reference: str = ""


@dataclass(frozen=True)
class TaskRecord:
    """The mutable statistics of one task, in a serializable form."""

    env: str
    task_id: str
    attempts: int
    reward_sum: float
    recent: tuple[int, ...]
    """Last attempts' pass (1) / fail (0), oldest first."""
    last_seen: float
    excluded_until: int

    def to_json(self) -> dict:
        return {
            "attempts": self.attempts,
            "reward_sum": self.reward_sum,
            "recent": list(self.recent),
            "last_seen": self.last_seen,
            "excluded_until": self.excluded_until,
        }

    @classmethod
    def from_json(cls, env: str, task_id: str, data: dict) -> TaskRecord:
        return cls(
            env,
            task_id,
            int(data["attempts"]),
            float(data["reward_sum"]),
            tuple(int(x) for x in data["recent"]),
            float(data["last_seen"]),
            int(data["excluded_until"]),
        )


class TaskTable:
    """The task population and its statistics."""

    def __init__(self, tasks: Sequence[TaskInfo], window: int):
        if not tasks:
            raise ValueError("the curriculum has no tasks (check its pools)")
        keys = [(t.env, t.task_id) for t in tasks]
        self.index: dict[tuple[str, str], int] = {key: row for row, key in enumerate(keys)}
        if len(self.index) != len(keys):
            seen, dupes = set(), []
            for key in keys:
                if key in seen:
                    dupes.append(key)
                seen.add(key)
            raise ValueError(f"duplicate task ids: {dupes[:5]}")
        self.tasks = list(tasks)
        self.window = window
        self.envs: list[str] = sorted({t.env for t in tasks})
        env_pos = {env: i for i, env in enumerate(self.envs)}
        n = len(tasks)
        self.env_idx = np.fromiter((env_pos[t.env] for t in tasks), dtype=np.int64, count=n)
        self.difficulty = np.fromiter((t.difficulty for t in tasks), dtype=np.float64, count=n)
        self.attempts = np.zeros(n, dtype=np.int64)
        self.reward_sum = np.zeros(n, dtype=np.float64)
        self.ring = np.full((n, window), -1, dtype=np.int8)
        self.ring_pos = np.zeros(n, dtype=np.int64)
        self.recent_passes = np.zeros(n, dtype=np.int64)
        self.recent_count = np.zeros(n, dtype=np.int64)
        self.last_seen = np.zeros(n, dtype=np.float64)
        self.excluded_until = np.zeros(n, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.tasks)

    def row(self, env: str, task_id: str) -> int:
        """Row of a task; KeyError when there is no such task."""
        return self.index[(env, task_id)]

    def record(self, passes: Sequence[bool], rewards: Sequence[float], row: int, now: float) -> None:
        """Add one group of attempts to a task's statistics."""
        self.attempts[row] += len(rewards)
        self.reward_sum[row] += float(np.sum(rewards))
        for passed in passes:
            self.ring[row, self.ring_pos[row] % self.window] = int(passed)
            self.ring_pos[row] += 1
        self._refresh(row)
        self.last_seen[row] = now

    def _refresh(self, row: int) -> None:
        self.recent_passes[row] = int((self.ring[row] == 1).sum())
        self.recent_count[row] = int((self.ring[row] >= 0).sum())

    def export(self, row: int) -> TaskRecord:
        count = int(min(self.ring_pos[row], self.window))
        start = int(self.ring_pos[row]) - count
        recent = tuple(int(self.ring[row, i % self.window]) for i in range(start, start + count))
        env, task_id = self.tasks[row].env, self.tasks[row].task_id
        return TaskRecord(env, task_id, int(self.attempts[row]), float(self.reward_sum[row]), recent, float(self.last_seen[row]), int(self.excluded_until[row]))

    def touched_rows(self) -> np.ndarray:
        """Rows that have any statistics."""
        return np.flatnonzero((self.attempts > 0) | (self.excluded_until > 0))

    def load(self, records: Iterable[TaskRecord]) -> list[TaskRecord]:
        """Restore rows from records; returns the records of tasks no longer in the table."""
        unknown = []
        for rec in records:
            row = self.index.get((rec.env, rec.task_id))
            if row is None:
                unknown.append(rec)
                continue
            recent = rec.recent[-self.window :]
            self.attempts[row] = rec.attempts
            self.reward_sum[row] = rec.reward_sum
            self.ring[row] = -1
            self.ring[row, : len(recent)] = recent
            self.ring_pos[row] = len(recent)
            self._refresh(row)
            self.last_seen[row] = rec.last_seen
            self.excluded_until[row] = rec.excluded_until
        return unknown

    def reset_stats(self) -> None:
        for array in (self.attempts, self.reward_sum, self.ring_pos, self.recent_passes, self.recent_count, self.last_seen, self.excluded_until):
            array[:] = 0
        self.ring[:] = -1

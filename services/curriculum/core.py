"""The curriculum behind the gRPC API: pools, the sampler, persistence, one lock.

Pools load in the background (the env service may start after us); until they
have, calls answer NotReady. Every change is saved to the store before the call
returns: after a restart the service continues with the same statistics,
levels, clock and RNG state.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from outrider.config.curriculum import CurriculumServiceConfig
from outrider.services.curriculum.pools import load_pools
from outrider.services.curriculum.store import CurriculumStore
from outrider.services.curriculum.strategies import Curriculum, task_key
from outrider.services.curriculum.table import TaskInfo

log = logging.getLogger(__name__)


class NotReady(RuntimeError):
    """The task pools are not loaded (yet, or they failed: `failed` says which)."""

    def __init__(self, message: str, failed: bool):
        super().__init__(message)
        self.failed = failed


class UnknownTask(KeyError):
    """An outcome names a task that is not in the pools."""


class UnknownEnv(KeyError):
    """A request names an environment without tasks here."""


@dataclass(frozen=True)
class Outcome:
    env: str
    task_id: str
    rewards: Sequence[float]


class CurriculumCore:
    def __init__(self, cfg: CurriculumServiceConfig, store: CurriculumStore):
        self.cfg = cfg
        self.store = store
        self.curriculum: Curriculum | None = None
        self.failure: str | None = None
        self._lock = asyncio.Lock()
        self._dirty: set[int] = set()
        self._loader: asyncio.Task | None = None
        self._stop_loading = threading.Event()

    def start(self) -> None:
        self._loader = asyncio.create_task(self._load(), name="curriculum-pools")

    async def wait_ready(self, timeout_s: float) -> Curriculum:
        await asyncio.wait_for(asyncio.shield(self._loader), timeout_s)
        return self._ready()

    async def _load(self) -> None:
        pools = self.cfg.pools
        try:
            tasks = await asyncio.to_thread(load_pools, pools, math.inf, self._stop_loading)
            curriculum = Curriculum(
                tasks, self.cfg.strategy, self.cfg.exclusion, self.cfg.env_weights, self.cfg.seed, self.cfg.window, self.cfg.success_threshold
            )
            saved, records = await self.store.load()
            if saved is not None:
                unknown = curriculum.load_state_dict({**saved, "tasks": {task_key(r.env, r.task_id): r.to_json() for r in records}})
                log.info("resumed curriculum state: clock %d, %d tasks with statistics", curriculum.clock, len(records) - len(unknown))
                if unknown:
                    log.warning("%d saved tasks are no longer in the pools; their statistics are kept in the store", len(unknown))
            self.curriculum = curriculum
            log.info("curriculum ready: %d tasks in %d environments, strategy %s", len(tasks), len(curriculum.table.envs), curriculum.name)
        except Exception as exc:  # noqa: BLE001 - reported to every caller, and logged
            self.failure = f"{type(exc).__name__}: {exc}"
            log.error("curriculum could not load its tasks: %s", self.failure)

    def _ready(self) -> Curriculum:
        if self.curriculum is not None:
            return self.curriculum
        if self.failure is not None:
            raise NotReady(f"the curriculum failed to load its task pools: {self.failure}", failed=True)
        raise NotReady("the curriculum is still loading its task pools (waiting for the env service?)", failed=False)

    async def _save(self, curriculum: Curriculum, rows: Sequence[int] = ()) -> None:
        # Rows whose save failed earlier are written with the next successful save.
        self._dirty.update(int(r) for r in rows)
        await self.store.save(curriculum.global_state(), curriculum.task_records(sorted(self._dirty)))
        self._dirty.clear()

    async def next_tasks(self, n: int, env: str = "") -> list[TaskInfo]:
        curriculum = self._ready()
        if env:
            try:
                curriculum.env_index(env)
            except KeyError:
                raise UnknownEnv(env) from None
        async with self._lock:
            rows = curriculum.sample(n, env or None)
            await self._save(curriculum)
        return [curriculum.table.tasks[row] for row in rows]

    async def report(self, outcomes: Sequence[Outcome], now: float) -> int:
        curriculum = self._ready()
        rows = []
        for index, outcome in enumerate(outcomes):
            try:
                rows.append(curriculum.table.row(outcome.env, outcome.task_id))
            except KeyError:
                raise UnknownTask(index) from None
        async with self._lock:
            for row, outcome in zip(rows, outcomes, strict=True):
                curriculum.report(row, outcome.rewards, now)
            curriculum.after_reports(rows)
            await self._save(curriculum, rows)
        return len(rows)

    def snapshot(self, max_tasks: int) -> dict:
        """Aggregates and the `max_tasks` most attempted tasks (plain values for the servicer)."""
        c = self._ready()
        t = c.table
        weights, excluded = c.weights(), c.excluded()
        envs = []
        for e, env in enumerate(t.envs):
            in_env = t.env_idx == e
            attempts = int(t.attempts[in_env].sum())
            envs.append(
                {
                    "env": env,
                    "tasks": int(in_env.sum()),
                    "attempts": attempts,
                    "mean_reward": float(t.reward_sum[in_env].sum() / attempts) if attempts else 0.0,
                    "weight": float(c.mix[e]),
                    "level": c.strategy.level(e),
                }
            )
        rows = np.argsort(-t.attempts, kind="stable")[: min(max_tasks, len(t))] if max_tasks else []
        tasks = []
        for row in rows:
            info, attempts, count = t.tasks[row], int(t.attempts[row]), int(t.recent_count[row])
            tasks.append(
                {
                    "env": info.env,
                    "task_id": info.task_id,
                    "difficulty": info.difficulty,
                    "attempts": attempts,
                    "mean_reward": float(t.reward_sum[row] / attempts) if attempts else 0.0,
                    "pass_rate": float(t.recent_passes[row] / count) if count else 0.0,
                    "last_seen_unix": float(t.last_seen[row]),
                    "weight": float(weights[row]),
                    "excluded": bool(excluded[row]),
                }
            )
        return {
            "strategy": c.name,
            "num_tasks": len(t),
            "num_excluded": int(excluded.sum()),
            "total_attempts": int(t.attempts.sum()),
            "envs": envs,
            "tasks": tasks,
        }

    async def close(self) -> None:
        self._stop_loading.set()
        if self._loader is not None and not self._loader.done():
            self._loader.cancel()
        await self.store.close()

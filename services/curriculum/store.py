"""Persistence of curriculum state behind a small interface.

The service calls `load` once at start and `save` after every change; only this
module talks to Redis (Redis stays behind small interfaces). Keys, under a configurable prefix:

* `<prefix>:global` — JSON: strategy, its state, clock, seed, RNG state;
* `<prefix>:tasks`  — hash: field `["env", "task_id"]` -> JSON statistics.

`save` writes the global state and the changed task rows in one MULTI/EXEC
transaction, so a crash never leaves a clock that disagrees with the statistics.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence

import redis
import redis.asyncio as aioredis

from outrider.services.curriculum.strategies import task_key
from outrider.services.curriculum.table import TaskRecord


class StoreError(RuntimeError):
    """The store could not be read or written (the message says why)."""


class CurriculumStore(ABC):
    @abstractmethod
    async def load(self) -> tuple[dict | None, list[TaskRecord]]:
        """The saved global state (None when there is none) and every saved task record."""

    @abstractmethod
    async def save(self, global_state: dict, records: Sequence[TaskRecord] = ()) -> None:
        """Replace the global state and upsert `records`, atomically."""

    @abstractmethod
    async def clear(self) -> None:
        """Delete everything this store saved."""

    async def close(self) -> None:
        return None


class RedisCurriculumStore(CurriculumStore):
    def __init__(self, url: str, prefix: str, socket_timeout_s: float = 30.0):
        self.prefix = prefix
        self.global_key = f"{prefix}:global"
        self.tasks_key = f"{prefix}:tasks"
        self._redis = aioredis.Redis.from_url(url, socket_timeout=socket_timeout_s, decode_responses=True)

    async def load(self):
        try:
            raw_global = await self._redis.get(self.global_key)
            raw_tasks = await self._redis.hgetall(self.tasks_key)
        except redis.RedisError as exc:
            raise StoreError(f"reading {self.prefix}:* from Redis failed: {type(exc).__name__}: {exc}") from None
        records = []
        for field, value in raw_tasks.items():
            env, task_id = json.loads(field)
            records.append(TaskRecord.from_json(env, task_id, json.loads(value)))
        return (json.loads(raw_global) if raw_global else None), records

    async def save(self, global_state, records=()):
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self.global_key, json.dumps(global_state))
                if records:
                    pipe.hset(self.tasks_key, mapping={task_key(r.env, r.task_id): json.dumps(r.to_json()) for r in records})
                await pipe.execute()
        except redis.RedisError as exc:
            raise StoreError(f"saving curriculum state to Redis failed: {type(exc).__name__}: {exc}") from None

    async def clear(self):
        await self._redis.delete(self.global_key, self.tasks_key)

    async def close(self):
        await self._redis.aclose()

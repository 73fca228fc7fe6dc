"""Where the curriculum's tasks come from: dataset files and the env service.

* dataset: a JSON Lines file, one task per line (`id`, `prompt`, `difficulty`,
  `reference`, `split`; field names configurable);
* env-service: the env service's ListTasks for each (or each listed)
  registered environment, page by page.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import grpc

from outrider.clients.env import EnvClient
from outrider.config.curriculum import DatasetPoolConfig, EnvServicePool, PoolConfig
from outrider.services.curriculum.table import TaskInfo

log = logging.getLogger(__name__)

ENV_ADDRESS_VARIABLE = "OUTRIDER_ENV_ADDRESS"


class PoolError(ValueError):
    """A pool cannot be read; the message names the file/line or the service."""


def dataset_tasks(cfg: DatasetPoolConfig) -> list[TaskInfo]:
    path = Path(cfg.path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise PoolError(f"dataset pool {path}: {exc.strerror or exc}") from None
    tasks = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PoolError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise PoolError(f"{where}: expected a JSON object")
        if str(row.get("split", cfg.split)) != cfg.split:
            continue
        task_id = row.get(cfg.id_field)
        if task_id is None or str(task_id) == "":
            raise PoolError(f"{where}: missing task id field {cfg.id_field!r}")
        try:
            difficulty = float(row.get(cfg.difficulty_field, 0.0))
        except (TypeError, ValueError):
            raise PoolError(f"{where}: {cfg.difficulty_field!r} is not a number") from None
        tasks.append(
            TaskInfo(cfg.env, str(task_id), difficulty, cfg.split, str(row.get(cfg.preview_field, "")), str(row.get(cfg.reference_field, "")))
        )
    if not tasks:
        raise PoolError(f"dataset pool {path}: no tasks of split {cfg.split!r}")
    return tasks


def env_service_address(cfg: EnvServicePool) -> str:
    return os.environ.get(ENV_ADDRESS_VARIABLE) or cfg.address


def env_service_tasks(cfg: EnvServicePool) -> list[TaskInfo]:
    """Every task of the pool's environments; raises grpc.RpcError when the service is unreachable."""
    tasks = []
    with EnvClient(env_service_address(cfg), timeout_s=cfg.connect_timeout_s) as client:
        envs = cfg.envs or [spec.name for spec in client.list_envs()]
        for env in envs:
            offset = 0
            while True:
                page = client.list_tasks(env, split=cfg.split, offset=offset, limit=cfg.page_size, include_reference=True)
                tasks += [TaskInfo(env, t.id, t.difficulty, t.split or cfg.split, t.preview, t.reference) for t in page]
                offset += len(page)
                if len(page) < cfg.page_size:
                    break
    return tasks


def load_pools(pools: Sequence[PoolConfig], retry_until: float | None = None, stop: threading.Event | None = None) -> list[TaskInfo]:
    """All tasks of all pools, sorted by (env, task id) so the order never depends on paging.

    Env-service pools are retried (1 s apart) while the service is unavailable,
    until the monotonic time `retry_until` (default: each pool's connect timeout;
    `math.inf` retries for ever) or until `stop` is set.
    """
    tasks: list[TaskInfo] = []
    for cfg in pools:
        if isinstance(cfg, DatasetPoolConfig):
            tasks += dataset_tasks(cfg)
            continue
        deadline = retry_until if retry_until is not None else time.monotonic() + cfg.connect_timeout_s
        attempt = 0
        while True:
            try:
                tasks += env_service_tasks(cfg)
                break
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline or (stop is not None and stop.is_set()):
                    raise PoolError(f"env service at {env_service_address(cfg)}: {exc.code().name}: {exc.details()}") from None
                log.log(logging.INFO if attempt % 30 == 0 else logging.DEBUG, "env service at %s not reachable yet; retrying", env_service_address(cfg))
                attempt += 1
                if stop is not None:
                    stop.wait(1.0)
                else:
                    time.sleep(1.0)
    return sorted(tasks, key=lambda t: (t.env, t.task_id))

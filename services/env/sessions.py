"""Open sessions of the env service: capacity, idle TTL, cleanup.

A session is one episode: a Python `Episode` in this process, a session of a
remote environment that the service proxies to, or one at an OpenEnv server. Sessions idle for longer
than `ttl_s` are closed by a periodic cleanup task (their environments'
`close` runs, remote sessions are closed); a later call with such an id is
told the session expired, not that it never existed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from outrider.envs.episode import Episode
from outrider.proto.v1 import env_pb2
from outrider.services.env.metrics import SESSIONS_EXPIRED, SESSIONS_OPEN
from outrider.services.env.openenv import OpenEnvSession

log = logging.getLogger(__name__)

_REMEMBERED_EXPIRED = 100_000


class SessionNotFound(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class SessionLimitReached(RuntimeError):
    pass


@dataclass
class Session:
    id: str
    env: str
    spec: env_pb2.EnvSpec
    episode: Episode | None = None
    """Python environments: the episode. None for remote ones."""
    remote_id: str = ""
    """Remote environments: the session id at the remote server."""
    openenv: OpenEnvSession | None = None
    """OpenEnv environments: the connection (or the base URL held) at the server."""
    created: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    turns: int = 0
    total_reward: float = 0.0
    solved: bool = False
    done: bool = False
    errors: int = 0
    """Steps whose status was not OK (environment failures)."""
    tool_errors: int = 0
    """Tool calls with status INVALID_INPUT or ERROR."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Steps of one session run one at a time."""

    def record(self, response: env_pb2.StepResponse) -> None:
        self.turns = response.turn
        self.done = self.done or response.done
        if response.HasField("reward"):
            self.total_reward += response.reward
        self.solved = self.solved or response.info.solved
        if response.status.code != response.status.OK:
            self.errors += 1
        self.tool_errors += sum(1 for call in response.info.tool_calls if call.status.code != call.status.OK)


Closer = Callable[[Session], Awaitable[None]]


class SessionManager:
    def __init__(self, ttl_s: float, max_sessions: int, closer: Closer, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
        self._closer = closer
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._expired: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def reserve(self) -> str:
        """A new session id, or SessionLimitReached when `max_sessions` are open."""
        if len(self._sessions) >= self.max_sessions:
            raise SessionLimitReached(f"{len(self._sessions)} sessions are open, the limit (max_sessions) is {self.max_sessions}; close some or wait for idle ones to expire after {self.ttl_s:g} s")
        return uuid.uuid4().hex

    def add(self, session: Session) -> None:
        if len(self._sessions) >= self.max_sessions:
            raise SessionLimitReached(f"the limit of {self.max_sessions} open sessions (max_sessions) is reached")
        session.created = session.last_used = self._clock()
        self._sessions[session.id] = session
        SESSIONS_OPEN.inc()

    def get(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            if session_id in self._expired:
                raise SessionNotFound(f"session {session_id!r} expired: it was idle for more than {self.ttl_s:g} s (session_ttl_s) and was closed")
            raise SessionNotFound(f"unknown session {session_id!r}")
        session.last_used = self._clock()
        return session

    def pop(self, session_id: str) -> Session:
        session = self.get(session_id)
        del self._sessions[session_id]
        SESSIONS_OPEN.dec()
        return session

    async def expire_idle(self) -> list[Session]:
        """Close every session idle for longer than the TTL; return them."""
        now = self._clock()
        expired = [s for s in self._sessions.values() if now - s.last_used > self.ttl_s and not s.lock.locked()]
        for session in expired:
            del self._sessions[session.id]
            SESSIONS_OPEN.dec()
            SESSIONS_EXPIRED.labels(session.env).inc()
            self._expired[session.id] = session.env
            while len(self._expired) > _REMEMBERED_EXPIRED:
                self._expired.popitem(last=False)
            await self._close_quietly(session)
        if expired:
            log.info("closed %d idle session(s)", len(expired))
        return expired

    async def run_cleanup(self, interval_s: float) -> None:
        """Expire idle sessions every `interval_s` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.expire_idle()
            except Exception:  # noqa: BLE001 - the cleanup loop must survive one bad close
                log.exception("session cleanup failed")

    async def close_all(self) -> None:
        sessions = list(self._sessions.values())
        self._sessions.clear()
        SESSIONS_OPEN.dec(len(sessions))
        for session in sessions:
            await self._close_quietly(session)

    async def _close_quietly(self, session: Session) -> None:
        try:
            await self._closer(session)
        except Exception:  # noqa: BLE001 - closing is best effort; the failure is logged
            log.warning("closing session %s of %s failed", session.id, session.env, exc_info=True)

"""Captured agent sessions in Redis: the calls an agent made, persisted as they happen.

Keys (C = `CaptureConfig.prefix`, S = a session id):

    C:S:meta    hash {state: "open" | "closed", created, closed, label}
    C:S:calls   list of CapturedCall bytes (agent.proto), in the order they were served

A rollout opens a session and hands the agent program a base URL that names it; the
policy service appends one record per call before it answers the call (`append` is one
Lua script that refuses a session that is not open), so an agent or rollout worker that
dies mid-episode loses none of the calls it made. Both keys expire `ttl_s` after the
last write, so abandoned sessions do not accumulate.

Session ids are capabilities: whoever knows one can spend the policy's compute on that
session, so they are 128 random bits (`secrets.token_urlsafe`), never derived from
anything a caller could guess.
"""

from __future__ import annotations

import re
import secrets
import time

import redis
from google.protobuf.message import DecodeError

from outrider.proto.v1.agent_pb2 import CapturedCall

SESSION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
"""What a session id looks like (anything else is refused before Redis is asked)."""

OPEN, CLOSED = "open", "closed"

_APPEND = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'open' then
  return {err = state and 'CLOSED' or 'UNKNOWN'}
end
local length = redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return length - 1
"""


class SessionUnknown(KeyError):
    """No session of that id (never opened, or expired)."""


class SessionClosed(RuntimeError):
    """The session was closed: it takes no more calls."""


class CaptureStore:
    def __init__(self, client: redis.Redis, prefix: str = "outrider:capture", ttl_s: int = 24 * 3600):
        if ttl_s < 1:
            raise ValueError(f"ttl_s must be at least 1 second, got {ttl_s}")
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._append = client.register_script(_APPEND)

    def _meta(self, session_id: str) -> str:
        return f"{self.prefix}:{session_id}:meta"

    def _calls(self, session_id: str) -> str:
        return f"{self.prefix}:{session_id}:calls"

    def open(self, label: str = "") -> str:
        """A new open session; returns its id."""
        session_id = secrets.token_urlsafe(16)
        meta = self._meta(session_id)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(meta, mapping={"state": OPEN, "created": repr(time.time()), "label": label})
            pipe.expire(meta, self.ttl_s)
            pipe.execute()
        return session_id

    def state(self, session_id: str) -> str | None:
        """"open", "closed", or None for an unknown (or expired) session."""
        if not SESSION_ID_RE.match(session_id):
            return None
        state = self.client.hget(self._meta(session_id), "state")
        return state.decode() if state is not None else None

    def label(self, session_id: str) -> str:
        value = self.client.hget(self._meta(session_id), "label")
        return value.decode() if value is not None else ""

    def close(self, session_id: str) -> None:
        """Refuse further calls; the records stay until they expire. Closing twice is fine."""
        if self.state(session_id) is None:
            raise SessionUnknown(session_id)
        self.client.hset(self._meta(session_id), mapping={"state": CLOSED, "closed": repr(time.time())})

    def append(self, session_id: str, call: CapturedCall) -> int:
        """Persist one call; returns its index in the session."""
        if not SESSION_ID_RE.match(session_id):
            raise SessionUnknown(session_id)
        try:
            return int(self._append(keys=[self._meta(session_id), self._calls(session_id)],
                                    args=[call.SerializeToString(), self.ttl_s]))
        except redis.ResponseError as exc:
            if "CLOSED" in str(exc):
                raise SessionClosed(session_id) from None
            if "UNKNOWN" in str(exc):
                raise SessionUnknown(session_id) from None
            raise

    def calls(self, session_id: str) -> list[CapturedCall]:
        """Every call of the session, in order."""
        return [_decode(raw, session_id, i) for i, raw in enumerate(self.client.lrange(self._calls(session_id), 0, -1))]

    def last(self, session_id: str) -> CapturedCall | None:
        """The session's latest call; None before its first."""
        raw = self.client.lindex(self._calls(session_id), -1)
        return _decode(raw, session_id, -1) if raw is not None else None

    def delete(self, session_id: str) -> None:
        self.client.delete(self._meta(session_id), self._calls(session_id))


def _decode(raw: bytes, session_id: str, index: int) -> CapturedCall:
    call = CapturedCall()
    try:
        call.ParseFromString(raw)
    except DecodeError as exc:
        raise ValueError(f"captured session {session_id}: call {index} is not a CapturedCall ({exc})") from None
    return call

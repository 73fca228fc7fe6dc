"""Adapter to OpenEnv servers (EnvSpec kind `openenv`): their sessions, over WebSocket or HTTP.

The mapping between the two APIs (actions, observations, tasks) is `outrider.envs.openenv`;
this module does the I/O. Two transports, as the spec's `openenv.transport` says:

* `websocket` (default): one connection to BASE/ws per session, messages
  `{"type": "reset" | "step", "data": {...}}` answered `{"type": "observation", "data":
  REPLY}` or `{"type": "error", ...}`. The current OpenEnv server (`HTTPEnvServer` of
  `openenv.core`) creates an environment per connection and keeps it until the
  connection closes: sessions are independent and run concurrently, up to the server's
  `max_concurrent_envs` (beyond it: RESOURCE_EXHAUSTED).
* `http`: POST BASE/reset and POST BASE/step `{"action": {...}}`. That server builds a
  fresh environment for every HTTP request and closes it afterwards, so over plain
  HTTP a step never sees the state its reset made. This form is for servers that keep
  one environment across requests, which all their clients share: the adapter plays
  one episode at a time per base URL, and a CreateSession while another episode holds
  it answers RESOURCE_EXHAUSTED (the episode lets go when it is done or closed).

Errors name the environment and the URL. Unreachable, or the connection lost:
UNAVAILABLE. No reply within the deadline: DEADLINE_EXCEEDED. The server refused the
request (HTTP 400/422, WebSocket VALIDATION_ERROR): INVALID_ARGUMENT with its message.
No such route, a redirect, another 4xx: FAILED_PRECONDITION. The environment itself
failing (HTTP 5xx, WebSocket EXECUTION_ERROR) or a reply that is not in OpenEnv's
format raise `EnvFailure`: the service answers a step with status ERROR (never a
reward) and a reset with INTERNAL. After any error the session's connection is
dropped: a reply may still be in flight on it.

Neither proxy settings from the environment nor redirects are followed: admission
checked the base URL, not where a redirect or a proxy would lead.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from outrider.envs import openenv
from outrider.proto import jsontext
from outrider.proto.v1 import env_pb2
from outrider.serving import DeadlineExceeded, FailedPrecondition, InvalidArgument, ResourceExhausted, Unavailable

_EXCERPT = 500


class EnvFailure(Exception):
    """The OpenEnv environment failed, or its server broke the protocol (not a transport failure)."""


class _NoRedirects(connect):
    """websockets' `connect`, answering a redirect as the error it is instead of following it."""

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


@dataclass
class OpenEnvSession:
    """What one env-service session holds at an OpenEnv server."""

    spec: env_pb2.EnvSpec
    session_id: str
    connection: ClientConnection | None = None
    """websocket transport: the session's connection."""
    holds_url: bool = False
    """http transport: this session holds its base URL (one episode at a time)."""
    lost: str = ""
    """Why the session can no longer be stepped (an error left its connection unusable)."""


def _excerpt(content: bytes | str) -> str:
    text = content.decode(errors="replace") if isinstance(content, bytes) else content
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


def _server_message(content: bytes) -> str:
    """What an error reply says: FastAPI's `detail`, else the body's start."""
    try:
        detail = jsontext.loads(content).get("detail")
    except (ValueError, AttributeError):
        return _excerpt(content) or "(empty body)"
    if detail is None:
        return _excerpt(content)
    return _excerpt(detail if isinstance(detail, str) else json.dumps(detail))


def ws_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws", "", ""))


class OpenEnvs:
    def __init__(self, default_timeout_s: float, max_reply_bytes: int):
        self.default_timeout_s = default_timeout_s
        self.max_reply_bytes = max_reply_bytes
        self._http = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        self._held: dict[str, str] = {}
        """http transport: base URL -> id of the session whose episode holds it."""

    @staticmethod
    def where(spec: env_pb2.EnvSpec) -> str:
        return f"OpenEnv environment {spec.name!r} at {spec.openenv.base_url}"

    def _timeout(self, spec: env_pb2.EnvSpec) -> float:
        return spec.openenv.timeout_s or self.default_timeout_s

    # --- sessions ----------------------------------------------------------------

    async def reset(self, spec: env_pb2.EnvSpec, task_id: str, seed: int, session_id: str) -> tuple[OpenEnvSession, openenv.Reply]:
        """Start an episode of `task_id`. TaskNotFound for an id the spec does not list;
        ServiceError for the transport; EnvFailure when the environment failed to reset."""
        body = openenv.reset_body(spec.openenv, task_id, seed, session_id)
        session = OpenEnvSession(spec, session_id)
        try:
            if spec.openenv.transport == "http":
                self._hold(session)
                data = await self._post(spec, "reset", body)
            else:
                session.connection = await self._open(spec)
                data = await self._exchange(spec, session.connection, {"type": "reset", "data": body}, "reset")
            reply = self._parsed(data, "reset")
            if reply.done:
                raise EnvFailure("the reset reply says done: the episode ended before its first step")
            self._rendered(spec, reply, "reset")
        except BaseException:
            await self.finish(session)
            raise
        return session, reply

    async def step(self, session: OpenEnvSession, text: str) -> openenv.Reply:
        """Send the policy's text as an action. ServiceError for the transport, EnvFailure
        when the environment failed; either way the session cannot be stepped again."""
        spec = session.spec
        if session.lost:
            raise FailedPrecondition(f"{self.where(spec)}: session {session.session_id!r} lost its connection ({session.lost}); close it and create a new one")
        action = openenv.action(spec.openenv, text)
        try:
            if session.connection is not None:
                data = await self._exchange(spec, session.connection, {"type": "step", "data": action}, "step")
            else:
                data = await self._post(spec, "step", {"action": action})
            reply = self._parsed(data, "step")
            if not reply.done:
                self._rendered(spec, reply, "step")
        except BaseException as exc:  # a failed or cancelled exchange may leave a reply in flight
            session.lost = f"the step failed with {type(exc).__name__}"
            await self.finish(session)
            raise
        if reply.done:
            await self.finish(session)
        return reply

    async def finish(self, session: OpenEnvSession) -> None:
        """Let go of what the session holds at the server (its connection, its base URL); idempotent."""
        if session.holds_url:
            self._held.pop(self._key(session.spec), None)
            session.holds_url = False
        connection, session.connection = session.connection, None
        if connection is not None:
            try:
                await asyncio.wait_for(connection.send(json.dumps({"type": "close"})), 1.0)
            except Exception:  # noqa: BLE001 - the server may be gone; closing is best effort
                pass
            await connection.close()

    async def close(self) -> None:
        await self._http.aclose()

    # --- http ----------------------------------------------------------------------

    @staticmethod
    def _key(spec: env_pb2.EnvSpec) -> str:
        return spec.openenv.base_url.rstrip("/")

    def _hold(self, session: OpenEnvSession) -> None:
        key = self._key(session.spec)
        holder = self._held.get(key)
        if holder is not None:
            raise ResourceExhausted(
                f"{self.where(session.spec)}: transport http plays one episode at a time per base_url (the server keeps one "
                f"environment for all requests) and session {holder!r} holds it; close that session, or use transport websocket"
            )
        self._held[key] = session.session_id
        session.holds_url = True

    async def _post(self, spec: env_pb2.EnvSpec, route: str, body: dict[str, Any]) -> Any:
        where, timeout = self.where(spec), self._timeout(spec)
        url = f"{self._key(spec)}/{route}"
        try:
            async with self._http.stream("POST", url, json=body, timeout=timeout) as response:
                content = bytearray()
                async for chunk in response.aiter_bytes():
                    content += chunk
                    if len(content) > self.max_reply_bytes:
                        raise EnvFailure(f"POST /{route}: the reply is larger than {self.max_reply_bytes} bytes (server.max_message_bytes)")
        except httpx.ConnectTimeout:
            raise Unavailable(f"{where} is unavailable: no connection within {timeout:g} s") from None
        except httpx.TimeoutException:
            raise DeadlineExceeded(f"{where} did not answer POST /{route} within {timeout:g} s (openenv.timeout_s)") from None
        except httpx.TransportError as exc:
            raise Unavailable(f"{where} is unavailable: {type(exc).__name__}: {exc}") from None
        status = response.status_code
        if status >= 300:
            raise self._http_error(spec, route, status, bytes(content))
        try:
            return jsontext.loads(content)
        except ValueError:
            raise EnvFailure(f"POST /{route} answered HTTP {status} with a body that is not JSON: {_excerpt(bytes(content))!r}") from None

    def _http_error(self, spec: env_pb2.EnvSpec, route: str, status: int, content: bytes) -> Exception:
        where, message = self.where(spec), _server_message(content)
        said = f"POST /{route} answered HTTP {status}: {message}"
        if status in (400, 422):
            hint = " (check openenv.action_field and action_template_json against the server's GET /schema)" if route == "step" else ""
            return InvalidArgument(f"{where} refused the {route}: {said}{hint}")
        if status in (404, 405):
            return FailedPrecondition(f"{where} has no POST /{route} (HTTP {status}): is it an OpenEnv server in simulation mode, and base_url its root?")
        if status < 400:
            return FailedPrecondition(f"{where}: {said}; redirects are not followed (give the final URL as base_url)")
        if status in (429, 503):
            return Unavailable(f"{where} is unavailable: {said}")
        if status < 500:
            return FailedPrecondition(f"{where}: {said}")
        return EnvFailure(said)

    # --- websocket -----------------------------------------------------------------

    async def _open(self, spec: env_pb2.EnvSpec) -> ClientConnection:
        where, timeout, url = self.where(spec), self._timeout(spec), ws_url(spec.openenv.base_url)
        try:
            return await _NoRedirects(url, open_timeout=timeout, close_timeout=1.0, max_size=self.max_reply_bytes, proxy=None)
        except InvalidStatus as exc:
            raise self._handshake_error(spec, exc.response.status_code) from None
        except TimeoutError:
            raise Unavailable(f"{where} is unavailable: no WebSocket connection to {url} within {timeout:g} s") from None
        except (OSError, InvalidHandshake, InvalidURI) as exc:
            raise Unavailable(f"{where} is unavailable: {type(exc).__name__}: {exc}") from None

    def _handshake_error(self, spec: env_pb2.EnvSpec, status: int) -> Exception:
        where = self.where(spec)
        if status in (429, 503) or status >= 500:
            return Unavailable(f"{where} is unavailable: GET /ws answered HTTP {status}")
        if status < 400:
            return FailedPrecondition(f"{where}: GET /ws answered HTTP {status}; redirects are not followed (give the final URL as base_url)")
        return FailedPrecondition(
            f"{where} has no WebSocket endpoint /ws (HTTP {status}): is base_url the server's root? "
            "A server without one needs openenv.transport: http"
        )

    async def _exchange(self, spec: env_pb2.EnvSpec, connection: ClientConnection, message: dict, what: str) -> Any:
        where, timeout = self.where(spec), self._timeout(spec)
        try:
            await connection.send(json.dumps(message))
        except ConnectionClosed:
            pass  # a server may say why (capacity) and close at once: what it said is still to be read
        try:
            raw = await asyncio.wait_for(connection.recv(), timeout)
        except TimeoutError:
            raise DeadlineExceeded(f"{where} did not answer the {what} within {timeout:g} s (openenv.timeout_s)") from None
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == 1009:
                raise EnvFailure(f"{what}: the reply is larger than {self.max_reply_bytes} bytes (server.max_message_bytes)") from None
            raise Unavailable(f"{where} is unavailable: the WebSocket closed during the {what}: {exc}") from None
        try:
            data = jsontext.loads(raw)
        except ValueError:
            raise EnvFailure(f"{what}: a WebSocket reply that is not JSON: {_excerpt(raw)!r}") from None
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "error":
            raise self._ws_error(spec, data.get("data"), what)
        if kind != "observation":
            raise EnvFailure(f"{what}: a WebSocket reply of type {kind!r}, expected 'observation' or 'error': {_excerpt(raw)!r}")
        return data.get("data")

    def _ws_error(self, spec: env_pb2.EnvSpec, data: Any, what: str) -> Exception:
        data = data if isinstance(data, dict) else {}
        code, message = str(data.get("code", "")), str(data.get("message", ""))
        errors = f" {_excerpt(json.dumps(data['errors']))}" if data.get("errors") else ""
        where = self.where(spec)
        if code == "VALIDATION_ERROR":
            hint = " (check openenv.action_field and action_template_json against the server's GET /schema)" if what == "step" else ""
            return InvalidArgument(f"{where} refused the {what}: {message}{errors}{hint}")
        if code == "CAPACITY_REACHED":
            return ResourceExhausted(
                f"{where} is at capacity ({data.get('active_sessions')} of {data.get('max_sessions')} sessions, its max_concurrent_envs): {message}"
            )
        return EnvFailure(f"{what}: the server answered {code or 'an error'}: {_excerpt(message)}")

    # --- replies -------------------------------------------------------------------

    @staticmethod
    def _rendered(spec: env_pb2.EnvSpec, reply: openenv.Reply, what: str) -> str:
        try:
            return openenv.render(spec.openenv, reply.observation)
        except openenv.ProtocolError as exc:
            raise EnvFailure(f"{what}: {exc}") from None

    @staticmethod
    def _parsed(data: Any, what: str) -> openenv.Reply:
        try:
            return openenv.parse_reply(data)
        except openenv.ProtocolError as exc:
            raise EnvFailure(f"{what}: the reply is not in OpenEnv's format: {exc}") from None

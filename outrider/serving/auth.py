"""Who may call what: bearer tokens and mTLS client certificates, mapped to roles.

Two roles, ordered: `client` < `admin` (an admin may do anything a client may).

* `client`: everything that uses a service — Generate, Tokenize, ScoreTokens, GetInfo,
  ListEnvs, ListTasks, CreateSession, Step, RunAgent, Score, ScoreSteps, NextTasks,
  ReportOutcomes (a worker reporting the episodes it ran), GetState, reflection.
* `admin`: what changes the service for every other caller — RegisterEnv, UnregisterEnv,
  UpdateWeights (`ADMIN_METHODS`).

The health service (grpc.health.v1) stays open: Kubernetes probes carry no credentials and
learn only SERVING / NOT_SERVING.

A caller proves its role with a bearer token (`authorization: Bearer <token>` metadata, the
header OpenAI clients send as their API key) or, on a TLS port that asks for client
certificates, with a certificate signed by the configured CA whose common name maps to a role
(`AuthConfig.cert_roles`). A presented token must be valid even when the certificate is:
a wrong token is never silently ignored. Tokens are kept as SHA-256 digests, so the server
holds no token in memory and a lookup takes the same time whatever prefix a guess shares
with a real token.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path

import grpc

from outrider.config.common import AuthConfig, Role
from outrider.serving.errors import InvalidArgument, PermissionDenied, ResourceExhausted, ServiceError

log = logging.getLogger(__name__)

ROLES: tuple[Role, ...] = ("client", "admin")
"""Roles from least to most privileged; each includes the ones before it."""

ADMIN_METHODS = frozenset({
    "outrider.v1.EnvService/RegisterEnv",
    "outrider.v1.EnvService/UnregisterEnv",
    "outrider.v1.PolicyService/UpdateWeights",
})
"""Methods that change a service for every caller; all other methods need `client`."""

OPEN_SERVICES = frozenset({"grpc.health.v1.Health"})
"""Services anyone may call (liveness and readiness probes)."""


class Unauthenticated(ServiceError):
    code = grpc.StatusCode.UNAUTHENTICATED


def required_role(method: str) -> Role | None:
    """The role `method` ("package.Service/Method") needs; None: open to anyone."""
    service = method.lstrip("/").rpartition("/")[0]
    if service in OPEN_SERVICES:
        return None
    return "admin" if method.lstrip("/") in ADMIN_METHODS else "client"


def allows(role: Role, needed: Role) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def read_tokens(path: str | Path) -> list[str]:
    """The tokens in a token file: one per line (several allow rotation), blank lines and
    `#` comments ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"auth.token_files: cannot read {path}: {exc.strerror or exc}") from None
    tokens = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not tokens:
        raise ValueError(f"auth.token_files: {path} holds no token")
    short = [t for t in tokens if len(t) < 16]
    if short:
        raise ValueError(f"auth.token_files: {path} has a token of {len(short[0])} characters; use at least 16 (e.g. `openssl rand -hex 32`)")
    return tokens


@dataclass(frozen=True)
class Caller:
    """Who made a call, once authenticated: the role and a stable name for per-client limits."""

    role: Role
    name: str


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Authenticator:
    """Checks the credentials of a call against the server's `AuthConfig`."""

    def __init__(self, cfg: AuthConfig):
        self.cfg = cfg
        self._roles_by_digest: dict[str, tuple[Role, str]] = {}
        for role, path in cfg.token_files.items():
            for i, token in enumerate(read_tokens(path)):
                self._roles_by_digest[token_digest(token)] = (role, f"{role}-token-{Path(path).name}-{i}")
        self.mtls = cfg.tls is not None and cfg.tls.client_ca_file is not None
        self.enabled = bool(self._roles_by_digest) or self.mtls

    def role_of_token(self, token: str) -> Caller | None:
        found = self._roles_by_digest.get(token_digest(token))
        return Caller(*found) if found else None

    def authenticate(self, authorization: str | None, cert_common_names: list[str], peer: str) -> Caller:
        """The caller of one call. Raises Unauthenticated (no or bad credentials) or
        PermissionDenied (a verified certificate whose name has no role)."""
        if not self.enabled:
            return Caller("admin", peer)
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("authorization: expected 'Bearer <token>'")
            caller = self.role_of_token(token.strip())
            if caller is None:
                raise Unauthenticated("authorization: the bearer token is not valid for this service")
            return caller
        if cert_common_names:
            for name in cert_common_names:
                if name in self.cfg.cert_roles:
                    return Caller(self.cfg.cert_roles[name], f"cert:{name}")
            raise PermissionDenied(f"client certificate {cert_common_names[0]!r} has no role (auth.cert_roles)")
        raise Unauthenticated("no credentials: send 'authorization: Bearer <token>' metadata"
                              + (" or a client certificate" if self.mtls else ""))

    def authorize(self, caller: Caller, method: str) -> None:
        needed = required_role(method)
        if needed is not None and not allows(caller.role, needed):
            raise PermissionDenied(f"{method.lstrip('/')} needs the '{needed}' role; this caller has '{caller.role}'")


class CallGate:
    """What every wrapped call passes before its request is even decoded: authentication,
    the method's role, and the caller's share of in-flight calls."""

    def __init__(self, authenticator: Authenticator, max_in_flight_per_client: int | None, retry_after_ms: int = 200):
        self.authenticator = authenticator
        self.max_in_flight = max_in_flight_per_client
        self.retry_after_ms = retry_after_ms
        # Touched only from the server's event loop (grpc.aio runs every handler there): no lock.
        self._in_flight: dict[str, int] = {}

    def admit(self, context, method: str) -> Caller | None:
        """The admitted caller (release it when the call ends), None for open methods;
        raises Unauthenticated / PermissionDenied / ResourceExhausted."""
        if required_role(method) is None:
            return None
        authorization, names, peer = call_credentials(context)
        caller = self.authenticator.authenticate(authorization, names, peer)
        self.authenticator.authorize(caller, method)
        if self.max_in_flight is None:
            return caller
        key = caller.name if self.authenticator.enabled else _peer_host(peer)
        count = self._in_flight.get(key, 0)
        if count >= self.max_in_flight:
            raise ResourceExhausted(f"this client already has {count} calls in flight, the limit per client "
                                    f"(server.max_concurrent_rpcs_per_client)", retry_after_ms=self.retry_after_ms)
        self._in_flight[key] = count + 1
        return Caller(caller.role, key)

    def release(self, caller: Caller | None) -> None:
        if caller is None or self.max_in_flight is None:
            return
        left = self._in_flight.get(caller.name, 1) - 1
        if left > 0:
            self._in_flight[caller.name] = left
        else:
            self._in_flight.pop(caller.name, None)


def _peer_host(peer: str) -> str:
    """"ipv4:127.0.0.1:5555" -> "ipv4:127.0.0.1": one client however many connections it opens."""
    return peer.rpartition(":")[0] if peer.count(":") >= 2 else peer


def check_bindable(cfg: AuthConfig, host: str, authenticator: Authenticator) -> None:
    """A server on a non-loopback interface must authenticate its callers, or say
    explicitly that it does not (`auth.insecure`)."""
    if authenticator.enabled and cfg.insecure:
        raise InvalidArgument("auth.insecure: true together with token_files or client certificates; choose one")
    if not authenticator.enabled and not cfg.insecure and not is_loopback(host):
        raise ValueError(
            f"server.host {host!r} is reachable from other machines but no authentication is configured: "
            "set server.auth.token_files (and/or server.auth.tls with client_ca_file), "
            "or server.auth.insecure: true to serve anyone who can connect"
        )
    if not authenticator.enabled:
        level = logging.WARNING if not is_loopback(host) else logging.INFO
        log.log(level, "no authentication on %s: every process that can connect may call every method", host)


def call_credentials(context) -> tuple[str | None, list[str], str]:
    """(authorization metadata, verified certificate common names, peer) of a gRPC call."""
    authorization = None
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            authorization = value if isinstance(value, str) else value.decode("utf-8", "replace")
            break
    names = [n.decode("utf-8", "replace") if isinstance(n, bytes) else n
             for n in (context.auth_context() or {}).get("x509_common_name", [])]
    return authorization, names, context.peer() or "unknown"


__all__ = [
    "ADMIN_METHODS", "ROLES", "Authenticator", "CallGate", "Caller", "Unauthenticated", "allows", "call_credentials",
    "check_bindable", "is_loopback", "read_tokens", "required_role", "token_digest",
]

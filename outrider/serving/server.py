"""Building and running Outrider's gRPC servers.

Every service's `server.py` calls `build_server` with its servicers; the
result is a bound, not yet started `grpc.aio.Server` and its port, so tests
bind port 0 and talk to it over a real channel. `run_until_signalled` starts
it, serves until SIGTERM/SIGINT and drains in-flight calls for `grace_s`.

Every server gets: the standard health service (grpc.health.v1), reflection,
Prometheus RPC metrics, and an interceptor that admits each caller before its
request is decoded (tokens, mTLS, roles, per-client limits: `outrider.serving.auth`)
and turns `ServiceError`s into their status codes (anything else becomes INTERNAL
with the exception named, and is logged with its traceback) — the server keeps
serving either way.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from outrider.config.common import ServerConfig
from outrider.serving.auth import Authenticator, CallGate, check_bindable, required_role
from outrider.serving.credentials import server_credentials
from outrider.serving.errors import InvalidArgument, ServiceError
from outrider.serving.metrics import RPC_SECONDS, RPC_TOTAL, MetricsEndpoint

log = logging.getLogger(__name__)

Register = Callable[[grpc.aio.Server], None]


class _StatusInterceptor(grpc.aio.ServerInterceptor):
    """Admits callers (`CallGate`), maps exceptions to statuses and records per-method metrics."""

    def __init__(self, gate: CallGate):
        self.gate = gate

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        handler = await continuation(details)
        if handler is None:
            return None
        if required_role(details.method) is None:  # health: open, nothing to wrap
            return handler
        service, _, method = details.method.rpartition("/")
        return _wrap_handler(handler, service.lstrip("/"), method, self.gate)


MAX_STATUS_MESSAGE_BYTES = 2000
"""Longest status message sent, in UTF-8 bytes. Messages quote the offending value, and a
client may send 20,000 characters of it; gRPC percent-encodes the message into a trailer
(up to 3 characters a byte) and clients refuse trailers past 8-16 KiB, so an uncut message
would reach the client as RESOURCE_EXHAUSTED instead of the status meant."""


def status_message(message: str) -> str:
    """`message`, cut to MAX_STATUS_MESSAGE_BYTES (at a character boundary) with what was cut said."""
    raw = message.encode("utf-8", errors="replace")
    if len(raw) <= MAX_STATUS_MESSAGE_BYTES:
        return message
    kept = raw[:MAX_STATUS_MESSAGE_BYTES].decode("utf-8", errors="ignore")
    return f"{kept}… ({len(raw) - len(kept.encode())} more bytes)"


def _record(service: str, method: str, code: grpc.StatusCode, start: float) -> None:
    RPC_TOTAL.labels(service, method, code.name).inc()
    RPC_SECONDS.labels(service, method).observe(time.perf_counter() - start)


async def _fail(context, service: str, method: str, start: float, exc: Exception):
    """Answer the call with the status `exc` stands for. Always raises.

    A client's error (a ServiceError) is one log line with the status; only a failure
    of the server itself (anything else: INTERNAL) is logged with its traceback.
    """
    if isinstance(exc, grpc.aio.AbortError):  # the servicer aborted itself
        _record(service, method, context.code() or grpc.StatusCode.UNKNOWN, start)
        raise exc
    if isinstance(exc, RecursionError):  # only a request nests this deep: the sender's bad input
        exc = InvalidArgument(f"{method}: the request is nested too deeply to process ({exc})")
    if isinstance(exc, ServiceError):
        _record(service, method, exc.code, start)
        log.info("%s/%s -> %s: %s", service, method, exc.code.name, exc.message[:300])
        await context.abort(exc.code, status_message(exc.message), exc.trailing_metadata())
    _record(service, method, grpc.StatusCode.INTERNAL, start)
    log.error("%s/%s failed", service, method, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, status_message(f"internal error in {method}: {type(exc).__name__}: {exc}"))


def _decoder(deserialize: Callable[[bytes], object] | None, method: str) -> Callable[[bytes], object]:
    """Request bytes to a message, inside the wrapped handler: an undecodable request then
    answers INVALID_ARGUMENT like any bad input (left to gRPC, its deserializer's exception
    is logged with a traceback per request and answered UNKNOWN)."""

    def decode(raw: bytes) -> object:
        if deserialize is None:
            return raw
        try:
            return deserialize(raw)
        except Exception as exc:  # noqa: BLE001 - DecodeError, also for too deeply nested messages
            raise InvalidArgument(f"{method}: the request is not a valid message ({type(exc).__name__}: {str(exc)[:200]})") from None

    return decode


async def _decoded(messages, decode: Callable[[bytes], object]):
    async for raw in messages:
        yield decode(raw)


def _wrap_handler(handler: grpc.RpcMethodHandler, service: str, method: str, gate: CallGate) -> grpc.RpcMethodHandler:
    """`handler` with admission first (before the request is decoded), then statuses and metrics."""
    decode = _decoder(handler.request_deserializer, method)
    full_method = f"{service}/{method}"

    def request_of(raw):
        return _decoded(raw, decode) if handler.request_streaming else decode(raw)

    if handler.unary_unary or handler.stream_unary:
        inner = handler.unary_unary or handler.stream_unary

        async def behavior(request, context):
            start = time.perf_counter()
            caller = None
            try:
                caller = gate.admit(context, full_method)
                response = await inner(request_of(request), context)
            except asyncio.CancelledError:
                _record(service, method, grpc.StatusCode.CANCELLED, start)
                raise
            except Exception as exc:  # noqa: BLE001 - every failure becomes a status
                await _fail(context, service, method, start, exc)
            finally:
                gate.release(caller)
            _record(service, method, grpc.StatusCode.OK, start)
            return response

        factory = grpc.unary_unary_rpc_method_handler if handler.unary_unary else grpc.stream_unary_rpc_method_handler
    else:
        inner = handler.unary_stream or handler.stream_stream

        async def behavior(request, context):
            start = time.perf_counter()
            caller = None
            try:
                caller = gate.admit(context, full_method)
                async for response in inner(request_of(request), context):
                    yield response
            except asyncio.CancelledError:
                _record(service, method, grpc.StatusCode.CANCELLED, start)
                raise
            except Exception as exc:  # noqa: BLE001 - every failure becomes a status
                await _fail(context, service, method, start, exc)
            finally:
                gate.release(caller)
            _record(service, method, grpc.StatusCode.OK, start)

        factory = grpc.unary_stream_rpc_method_handler if handler.unary_stream else grpc.stream_stream_rpc_method_handler
    return factory(
        behavior,
        request_deserializer=None,  # bytes reach `behavior`, which decodes them (see _decoder)
        response_serializer=handler.response_serializer,
    )


@dataclass
class BuiltServer:
    """A bound gRPC server with its health servicer and metrics endpoint."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    service_names: list[str]
    metrics: MetricsEndpoint | None = None
    on_stop: list[Callable[[], Awaitable[None] | None]] = field(default_factory=list)

    async def start(self) -> None:
        await self.server.start()
        for name in ["", *self.service_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace_s: float) -> None:
        """Refuse new calls, give in-flight ones `grace_s` seconds, then close."""
        for name in ["", *self.service_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(grace_s)
        for hook in self.on_stop:
            result = hook()
            if asyncio.iscoroutine(result):
                await result
        if self.metrics is not None:
            self.metrics.close()


def build_server(
    cfg: ServerConfig,
    register: Register,
    service_names: Iterable[str],
    with_metrics_endpoint: bool = True,
) -> BuiltServer:
    """Create a bound `grpc.aio` server with health, reflection and metrics.

    `register(server)` adds the service's servicers; `service_names` are their
    full names (e.g. `outrider.v1.PolicyService`) for health and reflection.
    Must be called with a running event loop (inside `async def`).
    """
    options = [
        ("grpc.max_send_message_length", cfg.max_message_bytes),
        ("grpc.max_receive_message_length", cfg.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    authenticator = Authenticator(cfg.auth)
    check_bindable(cfg.auth, cfg.host, authenticator)
    server = grpc.aio.server(
        interceptors=[_StatusInterceptor(CallGate(authenticator, cfg.max_concurrent_rpcs_per_client, cfg.per_client_retry_after_ms))],
        options=options,
        maximum_concurrent_rpcs=cfg.max_concurrent_rpcs,
    )
    register(server)
    names = list(service_names)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    try:
        # grpcio raises where older releases returned 0; either way the port is taken
        # (so_reuseport is off, so a second server can never share it) or not bindable.
        address = f"{cfg.host}:{cfg.port}"
        port = server.add_secure_port(address, server_credentials(cfg.auth.tls)) if cfg.auth.tls else server.add_insecure_port(address)
    except RuntimeError:
        port = 0
    if port == 0:
        raise OSError(f"cannot listen on {cfg.host}:{cfg.port}: the port is in use or the address is not this host's")
    metrics = None
    if with_metrics_endpoint and cfg.metrics_port is not None:
        metrics = MetricsEndpoint(cfg.host, cfg.metrics_port)
    return BuiltServer(server, port, health_servicer, names, metrics)


async def run_until_signalled(built: BuiltServer, grace_s: float, name: str) -> None:
    """Serve until SIGTERM or SIGINT, then drain gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await built.start()
    metrics = f", metrics :{built.metrics.port}" if built.metrics else ""
    log.info("%s serving on port %d%s", name, built.port, metrics)
    # A line for supervisors (`outrider up`) to read the chosen ports from.
    print(f"OUTRIDER_READY service={name} port={built.port} metrics_port={built.metrics.port if built.metrics else 0}", flush=True)
    await stop.wait()
    log.info("%s: signal received, draining in-flight calls for up to %.1f s", name, grace_s)
    await built.stop(grace_s)
    log.info("%s stopped", name)

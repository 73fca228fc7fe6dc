"""create_server(cfg): the gRPC PolicyService and, on the same event loop, the OpenAI HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from dataclasses import dataclass

import uvicorn
from grpc_health.v1 import health_pb2

from outrider.config.common import AuthConfig
from outrider.config.policy import PolicyServiceConfig
from outrider.proto.v1 import policy_pb2, policy_pb2_grpc
from outrider.serving import BuiltServer, build_server
from outrider.serving.auth import Authenticator
from outrider.services.policy.capture import CapturedSessions
from outrider.services.policy.core import PolicyCore
from outrider.services.policy.factory import build_core
from outrider.services.policy.http_limits import BodyLimit
from outrider.services.policy.openai_http import create_app
from outrider.services.policy.servicer import PolicyServicer

log = logging.getLogger(__name__)

SERVICE_NAME = policy_pb2.DESCRIPTOR.services_by_name["PolicyService"].full_name


class _InLoopServer(uvicorn.Server):
    """uvicorn inside someone else's event loop: the process's signal handling stays with
    `run_until_signalled`, which stops this server through `HttpFront.stop`."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


class HttpFront:
    """The OpenAI-compatible API served by uvicorn on an already bound socket."""

    def __init__(self, core: PolicyCore, host: str, port: int, grace_s: float, auth: AuthConfig | None = None,
                 max_body_bytes: int = 64 * 1024 * 1024):
        auth = auth or AuthConfig()
        self.socket = socket.create_server((host, port), reuse_port=False)
        self.port: int = self.socket.getsockname()[1]
        # The same tokens as the gRPC port; the same certificate, and with a client CA the
        # TLS handshake itself refuses clients without a certificate it signed.
        tls = {}
        if auth.tls is not None:
            tls = {"ssl_certfile": auth.tls.cert_file, "ssl_keyfile": auth.tls.key_file}
            if auth.tls.client_ca_file:
                tls |= {"ssl_ca_certs": auth.tls.client_ca_file, "ssl_cert_reqs": ssl.CERT_REQUIRED}
        config = uvicorn.Config(
            BodyLimit(create_app(core, Authenticator(auth)), max_body_bytes), log_level="warning", lifespan="off",
            timeout_graceful_shutdown=max(1, int(grace_s)), **tls,
        )
        self.server = _InLoopServer(config)
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.socket]), name="openai-http")
        while not self.server.started:
            if self.task.done():
                self.task.result()  # raises the startup error
                raise OSError("the OpenAI HTTP server exited during startup")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self.task is not None:
            self.server.should_exit = True
            await self.task
            self.task = None
        self.socket.close()


@dataclass
class PolicyServer(BuiltServer):
    core: PolicyCore | None = None
    http: HttpFront | None = None

    @property
    def http_port(self) -> int | None:
        return self.http.port if self.http is not None else None

    async def start(self) -> None:
        if self.http is not None:
            await self.http.start()
            log.info("OpenAI-compatible API on http://%s:%d/v1", self.http.socket.getsockname()[0], self.http.port)
            # For supervisors, like the OUTRIDER_READY line that follows.
            print(f"OUTRIDER_HTTP service=policy http_port={self.http.port}", flush=True)
        await super().start()

    async def stop(self, grace_s: float) -> None:
        try:
            await super().stop(grace_s)
            if self.http is not None:
                await self.http.stop()
        finally:
            if self.core is not None:
                if self.core.sessions is not None:
                    self.core.sessions.close()
                await self.core.backend.shutdown()


async def create_server(cfg: PolicyServiceConfig) -> PolicyServer:
    """Load the model, build the gRPC server (bound, not started) and the HTTP front."""
    core = await build_core(cfg)
    try:
        servicer = PolicyServicer(core)
        built = build_server(
            cfg.server, lambda server: policy_pb2_grpc.add_PolicyServiceServicer_to_server(servicer, server), [SERVICE_NAME]
        )
        if cfg.capture.redis_url is not None and cfg.http_port is not None:
            core.sessions = CapturedSessions(cfg.capture, core.renderer)
        http = HttpFront(core, cfg.server.host, cfg.http_port, cfg.server.grace_s, cfg.server.auth, cfg.server.max_message_bytes) if cfg.http_port is not None else None
    except BaseException:
        await core.backend.shutdown()
        raise
    server = PolicyServer(
        built.server, built.port, built.health, built.service_names, built.metrics, built.on_stop, core=core, http=http
    )

    def not_serving() -> None:
        # A dead engine never recovers in this process: tell health checks, so a supervisor restarts it.
        for name in ["", *server.service_names]:
            asyncio.ensure_future(server.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING))

    core.on_dead = not_serving
    return server

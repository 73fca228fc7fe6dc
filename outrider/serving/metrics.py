"""Prometheus metrics: RPC counters shared by every service, and the endpoint."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram, start_http_server

log = logging.getLogger(__name__)

RPC_TOTAL = Counter("outrider_rpc_total", "gRPC calls handled", ["service", "method", "code"])
RPC_SECONDS = Histogram(
    "outrider_rpc_seconds",
    "gRPC call latency in seconds",
    ["service", "method"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120),
)


class MetricsEndpoint:
    """A `/metrics` HTTP endpoint on its own thread."""

    def __init__(self, host: str, port: int):
        self._server, self._thread = start_http_server(port, addr=host)
        self.port = self._server.server_port
        log.info("metrics on http://%s:%d/metrics", host, self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

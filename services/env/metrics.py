"""Prometheus metrics of the env service (served on the service's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

STEPS = Counter("outrider_env_steps_total", "Environment steps by outcome status", ["env", "status"])
ENV_ERRORS = Counter(
    "outrider_env_errors_total",
    "Environment failures: reset or step raised, or a remote environment failed (never turned into rewards)",
    ["env", "stage"],
)
TOOL_CALLS = Counter("outrider_env_tool_calls_total", "Tool calls by tool and status (INVALID_INPUT = malformed)", ["env", "tool", "status"])
SESSIONS_OPEN = Gauge("outrider_env_sessions_open", "Open env sessions")
SESSIONS_EXPIRED = Counter("outrider_env_sessions_expired_total", "Sessions closed for being idle past their TTL", ["env"])

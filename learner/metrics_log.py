"""Per-step learner metrics to JSONL, TensorBoard and Prometheus (rank 0 only)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from prometheus_client import Gauge, Histogram, start_http_server

_GAUGES: dict[str, Gauge] = {}
POLICY_LAG = Histogram(
    "outrider_learner_policy_lag",
    "Versions between the weights that sampled a trained group and the learner's",
    buckets=(0, 1, 2, 3, 4, 6, 8, 16, 32),
)


def _gauge(name: str) -> Gauge:
    metric = "outrider_learner_" + re.sub(r"[^a-zA-Z0-9_]", "_", name)
    if metric not in _GAUGES:
        _GAUGES[metric] = Gauge(metric, f"learner metric {name}")
    return _GAUGES[metric]


class MetricsLog:
    def __init__(self, run_dir: Path, tensorboard: bool, prometheus_port: int | None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a")  # noqa: SIM115 - kept open for the run
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))
        self.prometheus_port = None
        if prometheus_port is not None:
            server, _ = start_http_server(prometheus_port, addr="127.0.0.1")
            self.prometheus_port = server.server_port

    def write(self, step: int, metrics: dict[str, float], lags: list[int]) -> None:
        record = {"step": step, "time": round(time.time(), 3), **{k: _plain(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        for name, value in metrics.items():
            if isinstance(value, (int, float)):
                _gauge(name).set(value)
                if self._writer is not None:
                    self._writer.add_scalar(name, value, step)
        for lag in lags:
            POLICY_LAG.observe(lag)
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        self._file.close()
        if self._writer is not None:
            self._writer.close()


def _plain(value):
    return round(value, 7) if isinstance(value, float) else value

"""Per-step learner metrics and sample episodes to JSONL, the trackers (TensorBoard,
W&B) and Prometheus (rank 0 only)."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from prometheus_client import Gauge, Histogram, start_http_server

from outrider.config.common import WandbConfig

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
    """Rank 0's sink for per-step metrics and sample episodes.

    metrics.jsonl (always), Prometheus gauges (when a port is given) and the trackers
    named in `report_to`: TensorBoard event files in `<run_dir>/tensorboard/`, a W&B run
    in `<run_dir>/wandb/` (offline unless configured online). Samples go to
    `<run_dir>/samples.jsonl`, a TensorBoard text panel and a W&B table.
    """

    def __init__(
        self,
        run_dir: Path,
        report_to: list[str],
        prometheus_port: int | None,
        wandb: WandbConfig | None = None,
        run_name: str | None = None,
        config: dict | None = None,
    ):
        run_dir = Path(run_dir)
        self.path = run_dir / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.samples_path = run_dir / "samples.jsonl"
        self._file = open(self.path, "a")  # noqa: SIM115 - kept open for the run
        self._writer = None
        self._wandb = None
        if "tensorboard" in report_to:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(run_dir / "tensorboard"))
        if "wandb" in report_to:
            self._wandb = _start_wandb(run_dir, wandb or WandbConfig(), run_name or run_dir.name, config)
        self.prometheus_port = None
        if prometheus_port is not None:
            server, _ = start_http_server(prometheus_port, addr="127.0.0.1")
            self.prometheus_port = server.server_port

    def write(self, step: int, metrics: dict[str, float], lags: list[int]) -> None:
        record = {"step": step, "time": round(time.time(), 3), **{k: _plain(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        scalars = {name: value for name, value in metrics.items() if isinstance(value, (int, float))}
        for name, value in scalars.items():
            _gauge(name).set(value)
            if self._writer is not None:
                self._writer.add_scalar(name, value, step)
        for lag in lags:
            POLICY_LAG.observe(lag)
        if self._writer is not None:
            self._writer.flush()
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    def write_samples(self, step: int, samples: list[dict]) -> None:
        """A step's sample episodes: dicts with prompt, completion, reward (and more)."""
        if not samples:
            return
        with open(self.samples_path, "a") as file:
            for sample in samples:
                file.write(json.dumps({"step": step, **sample}) + "\n")
        if self._writer is not None:
            text = "\n\n".join(
                f"**reward {s['reward']:+.3f}**\n\n    {s['prompt'][-300:]}\n\n    {s['completion']}".replace("\n", "\n    ")
                for s in samples
            )
            self._writer.add_text("samples", text, step)
        if self._wandb is not None:
            import wandb

            columns = ["step", "group_id", "reward", "solved", "prompt", "completion"]
            rows = [[step, s.get("group_id", ""), s["reward"], s.get("solved", False), s["prompt"], s["completion"]] for s in samples]
            self._wandb.log({"samples": wandb.Table(columns=columns, data=rows)}, step=step)

    def close(self) -> None:
        self._file.close()
        if self._writer is not None:
            self._writer.close()
        if self._wandb is not None:
            self._wandb.finish()


def _start_wandb(run_dir: Path, cfg: WandbConfig, name: str, config: dict | None):
    """A W&B run in `<run_dir>/wandb/`; offline by default (no network, no account)."""
    try:
        import wandb
    except ImportError as exc:  # pragma: no cover - wandb is a dependency
        raise RuntimeError("report_to names wandb, but the wandb package is not installed: pip install wandb") from exc
    os.environ.setdefault("WANDB_SILENT", "true")
    return wandb.init(
        project=cfg.project,
        entity=cfg.entity,
        group=cfg.group,
        tags=cfg.tags or None,
        name=name,
        dir=str(run_dir),
        mode=cfg.mode,
        config=config or {},
        # The learner handles its own signals (graceful stop, checkpoints).
        settings=wandb.Settings(console="off", x_disable_stats=True),
    )


def _plain(value):
    return round(value, 7) if isinstance(value, float) else value

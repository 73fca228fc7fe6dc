"""Live progress of a training run in the terminal: one line per learner step."""

from __future__ import annotations

import json
import time
from pathlib import Path

from outrider.config import RunConfig
from outrider.learner.status import describe, read_status

HEADER = (
    f"{'step':>6} {'reward':>7} {'solved':>7} {'KL':>8} {'entropy':>8} {'tok/s':>7} "
    f"{'queue':>6} {'lag':>5} {'rollouts':>9} {'errors':>7} {'elapsed':>8}"
)


def _kl(metrics: dict) -> float:
    return metrics.get("kl_ref", metrics.get("actor/approx_kl_k3", float("nan")))


class Progress:
    def __init__(self, run: RunConfig, run_dir: Path, dispatcher):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "metrics.jsonl"
        self.max_steps = run.learner.max_steps
        self.dispatcher = dispatcher
        self.offset = self.path.stat().st_size if self.path.exists() else 0
        self.started = time.monotonic()
        self.last_print = 0.0
        self.header_printed = False

    def _new_steps(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path) as source:
            source.seek(self.offset)
            chunk = source.read()
        complete, _, _ = chunk.rpartition("\n")
        if not complete:
            return []
        self.offset += len(complete) + 1
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def maybe_print(self, final: bool = False) -> None:
        steps = self._new_steps()
        now = time.monotonic()
        if not steps and not final and now - self.last_print < 30:
            return
        if not self.header_printed:
            print(HEADER, flush=True)
            self.header_printed = True
        stats = self.dispatcher.stats
        elapsed = time.strftime("%M:%S", time.gmtime(now - self.started))
        if not steps:
            waiting = f"{'…':>6} {'':>7} {'':>7} {'':>8} {'':>8} {'':>7} {len(self.dispatcher.pending):>6} {'':>5}"
            learner = describe(read_status(self.run_dir), time.time())
            print(f"{waiting} {stats.finished:>9} {stats.episode_errors + stats.failed_tasks:>7} {elapsed:>8}  {learner}", flush=True)
        for m in steps:
            step = f"{m['step']}/{self.max_steps}" if self.max_steps else str(m["step"])
            print(
                f"{step:>6} {m.get('reward_mean', float('nan')):>7.3f} {m.get('solved_rate', float('nan')):>7.3f} "
                f"{_kl(m):>8.4f} {m.get('entropy', float('nan')):>8.3f} {m.get('tokens_per_s', 0):>7.0f} "
                f"{int(m.get('bus_queued', 0)):>6} {m.get('policy_lag_mean', 0):>5.2f} "
                f"{stats.finished:>9} {stats.episode_errors + stats.failed_tasks:>7} {elapsed:>8}",
                flush=True,
            )
        self.last_print = now

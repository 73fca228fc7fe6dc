"""What the learner is doing now, for the run's live progress output.

Rank 0 writes `RUN_DIR/learner-status.json` at every phase change (atomically: a
temporary file renamed over the old one), and `outrider train` prints it on the lines
between steps, so that a minute-long step on a small machine is never silent:

    {"phase": "update", "step": 3, "detail": "40 sequences, 5,312 tokens", "since_unix": 1764620000.1}

Phases: `loading` (models and optimizer), `waiting` (for the step's groups: detail says
how many arrived), `update` (scoring, forward/backward and optimizer; detail says which
part: "scoring pass", "epoch 2/2, mini-batch 1/2"), `sync` (weights
to the policy), `checkpoint`, `done`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

FILE = "learner-status.json"


class LearnerStatus:
    """Writes the phase file; a no-op on ranks other than 0 (`path` None)."""

    def __init__(self, run_dir: Path | None):
        self.path = None if run_dir is None else Path(run_dir) / FILE
        self._current: tuple[str, int, str] | None = None
        self._since = 0.0

    def set(self, phase: str, step: int, detail: str = "") -> None:
        """Phase `phase` of step `step`, now doing `detail`. `since_unix` is when the phase
        began: a new detail within the same phase and step (the next mini-batch of an
        update, one more group arrived) keeps it, so the progress line counts the whole
        phase's seconds."""
        if self.path is None or self._current == (phase, step, detail):
            return
        same_phase = self._current is not None and self._current[:2] == (phase, step)
        self._current = (phase, step, detail)
        if not same_phase:
            self._since = round(time.time(), 3)
        record = {"phase": phase, "step": step, "detail": detail, "since_unix": self._since}
        self.path.parent.mkdir(parents=True, exist_ok=True)  # the learner may start before its run folder
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(self.path)


def read_status(run_dir: Path) -> dict | None:
    """The learner's last phase record, or None before it wrote one."""
    path = Path(run_dir) / FILE
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def describe(status: dict | None, now_unix: float) -> str:
    """One short phrase for the progress line, e.g. `update step 3 (40 sequences) 25 s`."""
    if not status:
        return "learner starting"
    phase, step = status.get("phase", "?"), status.get("step", 0)
    seconds = max(0.0, now_unix - float(status.get("since_unix", now_unix)))
    detail = f" ({status['detail']})" if status.get("detail") else ""
    return f"learner: {phase} step {step}{detail} {seconds:.0f} s"

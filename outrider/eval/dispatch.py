"""Fanning one checkpoint's held-out tasks out over the Celery rollout workers.

One worker task (`outrider.rollout.worker.evaluate_task`) per (checkpoint, task);
each result is handed to `on_result` (which stores it) as soon as it is ready, so
what is stored never depends on the other tasks finishing. A task whose worker
task failed, or whose every episode ended in an infrastructure error, is sent
again up to `retries` times; after that the evaluation stops, naming the task.
"""

from __future__ import annotations

import base64
import sys
import time
from collections.abc import Callable

from outrider.proto.v1 import eval_pb2
from outrider.rollout.worker import EVAL_TASK_NAME


class DispatchError(RuntimeError):
    """A task could not be evaluated within its retries."""


class Progress:
    """`name [i/N]: done/total tasks, samples, samples/s` — a line rewritten in place on a
    terminal, printed every few seconds otherwise."""

    def __init__(self, label: str, total: int, done: int, echo: Callable[[str], None] | None = None):
        self.label = label
        self.total = total
        self.done = done
        self.samples = 0
        self.errors = 0
        self.started = time.monotonic()
        self.printed = 0.0
        self.tty = echo is None and sys.stdout.isatty()
        self.echo = echo or (lambda line: print(line, flush=True))

    def add(self, samples: eval_pb2.TaskSamples) -> None:
        self.done += 1
        self.samples += samples.samples
        self.errors += samples.errors
        self.show()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return (f"  {self.label}: {self.done}/{self.total} tasks, {self.samples} samples, "
                f"{self.samples / elapsed:.1f} samples/s, {self.errors} episode errors")

    def show(self, final: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            print("\r" + self.line(), end="\n" if final else "", flush=True)
        elif final or now - self.printed >= 5.0:
            self.echo(self.line())
        self.printed = now


class TaskDispatcher:
    """Send requests, collect results, retry failures (see the module docstring)."""

    def __init__(self, app, retries: int):
        self.app = app
        self.retries = retries
        self.pending: dict[str, tuple[object, eval_pb2.EvalTaskRequest, int]] = {}

    def send(self, key: str, request: eval_pb2.EvalTaskRequest, attempt: int = 0) -> None:
        payload = base64.b64encode(request.SerializeToString()).decode()
        self.pending[key] = (self.app.send_task(EVAL_TASK_NAME, args=[payload]), request, attempt)

    def collect(self, on_result: Callable[[str, eval_pb2.TaskSamples], None]) -> None:
        """Hand every finished result to `on_result`; resend failures; raise when spent."""
        for key, (result, request, attempt) in list(self.pending.items()):
            if not result.ready():
                continue
            del self.pending[key]
            problem = None
            if result.successful():
                samples = eval_pb2.TaskSamples.FromString(base64.b64decode(result.result))
                if samples.samples == 0 and samples.errors:
                    problem = f"every episode failed: {'; '.join(samples.error_messages)}"
                else:
                    on_result(key, samples)
            else:
                problem = f"the worker task failed: {result.result!r}"
            result.forget()
            if problem is None:
                continue
            if attempt >= self.retries:
                raise DispatchError(f"{request.checkpoint} / {key}: {problem} (tried {attempt + 1} times)")
            self.send(key, request, attempt + 1)

    def cancel(self) -> None:
        for result, _, _ in self.pending.values():
            try:
                result.revoke()
            except Exception:  # noqa: BLE001 - best effort: Redis may already be gone
                pass
        self.pending.clear()

"""The example environment servers shipped in outrider.envs.examples, as child processes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def example_server(module: str) -> Iterator[subprocess.Popen]:
    """`python -m MODULE --port 0`, once it printed `REMOTE_ENV_READY port=N`; the process's
    `.port` is N. Terminated on exit."""
    process = subprocess.Popen([sys.executable, "-m", module, "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("REMOTE_ENV_READY port="), line
        process.port = int(line.strip().split("=")[1])
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(10)

"""Fixtures of the sandbox tests: real backends, a private workspace root, host probes."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from outrider.envs.sandbox import SandboxOptions, backend_class

ISOLATING_BACKENDS = ("bwrap", "gvisor")


@pytest.fixture(scope="session")
def sandbox_options():
    """A workspace root of its own (under /tmp: a run's uid must be able to reach it)
    and a uid range no other sandbox user on this machine leases from."""
    root = Path("/tmp") / f"outrider-sandbox-test-{uuid.uuid4().hex[:8]}"
    options = SandboxOptions(workspace_root=root, uid_base=random.randrange(2_000_000, 2_000_000_000, 65536))
    yield options
    shutil.rmtree(root, ignore_errors=True)


def make_backend(name: str, options: SandboxOptions):
    cls = backend_class(name)
    reason = cls.unavailable_reason(options)
    if reason is not None:
        pytest.skip(f"sandbox backend {name} unavailable: {reason}")
    return cls(options)


@pytest.fixture(params=ISOLATING_BACKENDS)
def sandbox(request, sandbox_options):
    """Each containment test runs against bwrap and against gVisor."""
    box = make_backend(request.param, sandbox_options)
    yield box
    box.close()


@pytest.fixture
def marker() -> str:
    """A string unique to this test, to find processes and files it caused."""
    return f"outrider-marker-{uuid.uuid4().hex}"


@pytest.fixture
def sentinel(marker):
    """A host process (root) with the marker in its command line and a secret in its
    environment, for the sandboxed code to find or kill."""
    secret = f"sentinel-secret-{uuid.uuid4().hex}"
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)", marker],
        env={**os.environ, "OUTRIDER_SENTINEL_SECRET": secret},
    )
    process.secret = secret
    yield process
    process.kill()
    process.wait()


class LoopbackServer:
    """A TCP server on the host that counts the connections it accepts."""

    def __init__(self, host: str):
        self.socket = socket.create_server((host, 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.socket.close()


@pytest.fixture
def loopback_server():
    server = LoopbackServer("127.0.0.1")
    yield server
    server.close()


@pytest.fixture
def any_interface_server():
    server = LoopbackServer("0.0.0.0")
    yield server
    server.close()

"""`outrider serve`: a port already in use, or an invalid one, is a one-line error that
names the service and the port; no traceback, exit status not 0."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest


def _serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "outrider.cli.main", "serve", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("service", ["env", "curriculum"])
def test_a_port_in_use_is_one_line_naming_the_service_and_the_port(service):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve(service, "--port", str(port))
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert f"{service} could not start: cannot listen on 127.0.0.1:{port}: the port is in use" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--port", "70000", "server.port: Input should be less than or equal to 65535"),
    ("--port", "-1", "server.port: Input should be greater than or equal to 0"),
])
def test_an_invalid_port_is_refused_before_starting(flag, value, message):
    done = _serve("env", flag, value)
    assert done.returncode == 2
    assert f"{flag} {value}: invalid configuration" in done.stderr and message in done.stderr
    assert "Traceback" not in done.stderr

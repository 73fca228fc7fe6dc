"""Containment suite (network): hostile programs against the real bwrap and gVisor backends.

Every case asserts that the host is unaffected (a file does not exist, a server
saw no connection, a host process is alive, nothing of the run is left), not
only that the program saw an error. Shared limits and probes: testkit/containment.py.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from testkit.containment import assert_nothing_left, run_json

pytestmark = pytest.mark.sandbox


def test_network_egress_to_external_addresses_fails(sandbox):
    code = """
import json, socket
outcome = {}
for host, port in [("1.1.1.1", 53), ("8.8.8.8", 443), ("93.184.216.34", 80)]:
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect((host, port)); outcome[host] = "connected"
    except OSError as exc:
        outcome[host] = f"error {exc.errno}"
try:
    socket.getaddrinfo("pypi.org", 443); outcome["dns"] = "resolved"
except OSError as exc:
    outcome["dns"] = "error"
print(json.dumps(outcome))
"""
    result, outcome = run_json(sandbox, code)
    assert result.exit_code == 0
    assert all(value.startswith("error") for value in outcome.values()), outcome
    assert_nothing_left(sandbox)


def test_network_service_on_host_loopback_unreachable(sandbox, loopback_server):
    code = """
import json, socket, sys
s = socket.socket(); s.settimeout(2)
try:
    s.connect(("127.0.0.1", int(sys.argv[1]))); print(json.dumps("connected"))
except OSError as exc:
    print(json.dumps(f"error {exc.errno}"))
"""
    _, outcome = run_json(sandbox, code, str(loopback_server.port))
    time.sleep(0.3)  # let the server's accept loop see a connection, had there been one
    assert outcome.startswith("error")
    assert loopback_server.accepted == 0


def test_network_host_address_unreachable(sandbox, any_interface_server):
    host_ip = _non_loopback_address()
    if host_ip is None:
        pytest.skip("this host has no non-loopback IPv4 address")
    code = """
import json, socket, sys
s = socket.socket(); s.settimeout(2)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); print(json.dumps("connected"))
except OSError as exc:
    print(json.dumps(f"error {exc.errno}"))
"""
    _, outcome = run_json(sandbox, code, host_ip, str(any_interface_server.port))
    time.sleep(0.3)
    assert outcome.startswith("error")
    assert any_interface_server.accepted == 0


def _non_loopback_address() -> str | None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))  # no packet is sent: only picks a route
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


def test_host_unix_sockets_unreachable(sandbox, marker, tmp_path):
    """Neither a socket file in the host's /tmp nor an abstract socket of the host's network namespace."""
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind(f"\0{marker}")
    abstract.listen()
    path = Path("/tmp") / f"{marker}.sock"
    named = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    named.bind(str(path))
    named.listen()
    abstract.setblocking(False)
    named.setblocking(False)
    code = """
import json, socket, sys
outcome = {}
for name, address in [("abstract", "\\0" + sys.argv[1]), ("file", "/tmp/" + sys.argv[1] + ".sock")]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(address); outcome[name] = "connected"
    except OSError as exc:
        outcome[name] = f"error {exc.errno}"
print(json.dumps(outcome))
"""
    try:
        _, outcome = run_json(sandbox, code, marker)
        for server in (abstract, named):
            with pytest.raises(BlockingIOError):
                server.accept()
    finally:
        abstract.close()
        named.close()
        path.unlink()
    assert all(value.startswith("error") for value in outcome.values()), outcome

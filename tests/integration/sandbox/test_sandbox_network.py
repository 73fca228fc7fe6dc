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


def test_network_namespace_has_only_loopback_and_no_route(sandbox):
    """No way out, shown without sending anything off the host: inside the sandbox the
    only interface is loopback and no IPv4 or IPv6 route leads anywhere else."""
    code = """
import json, socket
def lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except OSError:
        return []
routes = [l.split()[0] for l in lines("/proc/net/route")[1:] if l.split() and l.split()[0] != "lo"]
routes6 = [l.split()[-1] for l in lines("/proc/net/ipv6_route") if l.split() and l.split()[-1] != "lo"]
print(json.dumps({"interfaces": sorted(name for _, name in socket.if_nameindex()), "routes": routes + routes6}))
"""
    result, outcome = run_json(sandbox, code)
    assert result.exit_code == 0
    assert outcome["interfaces"] in (["lo"], []), outcome
    assert outcome["routes"] == [], outcome
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
    """An IPv4 address of one of this host's own interfaces, other than loopback."""
    import psutil

    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return None


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

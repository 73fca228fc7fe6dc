"""Agent programs in the bwrap sandbox (outrider.envs.agent): the gateway is their only way
out, and how a run ends is typed (the agent's failure vs infrastructure).

The "gateway" is an HTTP server of this test on host loopback that answers every request
with its path; the other listener (LoopbackServer, conftest.py) must never see a
connection. Nothing is sent anywhere but 127.0.0.1 and ::1.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from outrider.envs.agent import AgentOutcome, GatewayBridge, run_agent
from outrider.envs.sandbox import Limits, backend_class

pytestmark = pytest.mark.sandbox
SESSION = "s" * 22
LIMITS = Limits(wall_time_s=30, cpu_time_s=30, memory_bytes=1024 * 1024 * 1024, max_processes=64)


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def bwrap_box(sandbox_options):
    """Agent runs need per-run mounts and variables: bwrap (RunExtras)."""
    reason = backend_class("bwrap").unavailable_reason(sandbox_options)
    if reason is not None:
        pytest.skip(f"sandbox backend bwrap unavailable: {reason}")
    box = backend_class("bwrap")(sandbox_options)
    yield box
    box.close()


@pytest.fixture
def gateway():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def play(box, port, code, args=(), limits=LIMITS, **kwargs):
    async def run():
        async with GatewayBridge("127.0.0.1", port) as bridge:
            return await run_agent(box, ["python3", "-c", code, *args], bridge, session_id=SESSION, model="m",
                                   task={"id": "t1", "prompt": "What is 6 * 7?"}, limits=limits, **kwargs)
    return asyncio.run(run())


def test_the_agent_reaches_its_session_through_the_gateway_and_gets_its_task(bwrap_box, gateway):
    code = """
import json, os, urllib.request
with urllib.request.urlopen(os.environ["OPENAI_BASE_URL"] + "/models", timeout=10) as reply:
    seen = json.load(reply)["path"]
print(json.dumps({"path": seen, "prompt": os.environ["OUTRIDER_PROMPT"], "task": json.load(open("task.json"))["id"]}))
"""
    run = play(bwrap_box, gateway, code)
    assert run.outcome is AgentOutcome.OK, run
    assert json.loads(run.output) == {"path": f"/sessions/{SESSION}/v1/models", "prompt": "What is 6 * 7?", "task": "t1"}


def test_nothing_but_the_gateway_is_reachable(bwrap_box, gateway, loopback_server):
    code = """
import json, socket, sys
def lines(path):
    with open(path) as f:
        return f.read().splitlines()
def attempt(family, host, port):
    s = socket.socket(family); s.settimeout(2)
    try:
        s.connect((host, port)); return "connected"
    except OSError as exc:
        return f"error {exc.errno}"
print(json.dumps({
    "interfaces": sorted(name for _, name in socket.if_nameindex()),
    "routes": [l.split()[0] for l in lines("/proc/net/route")[1:] if l.split() and l.split()[0] != "lo"],
    "other": attempt(socket.AF_INET, "127.0.0.1", int(sys.argv[1])),
    "other6": attempt(socket.AF_INET6, "::1", int(sys.argv[1])),
    "gateway_port_on_host": attempt(socket.AF_INET, "127.0.0.1", int(sys.argv[2])),
}))
"""
    run = play(bwrap_box, gateway, code, args=[str(loopback_server.port), str(gateway)])
    assert run.outcome is AgentOutcome.OK, run
    seen = json.loads(run.output)
    assert seen["interfaces"] == ["lo"] and seen["routes"] == []
    # The host's listeners, the gateway's own port included, do not exist in the sandbox:
    # only 127.0.0.1:8000 there leads out, and only to the gateway.
    assert seen["other"].startswith("error") and seen["other6"].startswith("error")
    assert seen["gateway_port_on_host"].startswith("error")
    assert loopback_server.accepted == 0


def test_the_services_python_packages_can_be_imported_when_asked_for(bwrap_box, gateway):
    run = play(bwrap_box, gateway, "import openai; print(openai.__name__)", host_python_packages=True)
    assert (run.outcome, run.output) == (AgentOutcome.OK, "openai")
    without = play(bwrap_box, gateway, "import openai")
    assert without.outcome is AgentOutcome.FAILED and "ModuleNotFoundError" in without.message


@pytest.mark.parametrize(("code", "outcome", "message"), [
    ("import sys; print('partial'); sys.exit(3)", AgentOutcome.FAILED, "exited with status 3"),
    ("raise ValueError('bad tool call')", AgentOutcome.FAILED, "ValueError: bad tool call"),
    ("import time; time.sleep(60)", AgentOutcome.TIMEOUT, "wall-clock limit of 2 s"),
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", AgentOutcome.KILLED, "killed by signal 9"),
])
def test_how_a_run_ends_is_typed(bwrap_box, gateway, code, outcome, message):
    run = play(bwrap_box, gateway, code, limits=Limits(wall_time_s=2, cpu_time_s=30, memory_bytes=2**30, max_processes=64))
    assert run.outcome is outcome and message in run.message, run
    assert run.output == ""  # a failed run has no final answer to verify
    assert run.outcome.infrastructure == (outcome is AgentOutcome.KILLED)


def test_an_unreachable_gateway_is_an_infrastructure_failure(bwrap_box):
    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = """
import os, urllib.request
urllib.request.urlopen(os.environ["OPENAI_BASE_URL"] + "/models", timeout=5)
"""
    run = play(bwrap_box, port, code)
    assert run.outcome is AgentOutcome.INFRA and "unreachable" in run.message
    assert run.outcome.infrastructure


def test_a_program_that_cannot_start_is_an_infrastructure_failure(bwrap_box, gateway):
    async def run():
        async with GatewayBridge("127.0.0.1", gateway) as bridge:
            return await run_agent(bwrap_box, ["/agent/missing-binary"], bridge, session_id=SESSION, model="m",
                                   task={"id": "t"}, limits=LIMITS)
    result = asyncio.run(run())
    assert result.outcome is AgentOutcome.INFRA and "could not be started" in result.message

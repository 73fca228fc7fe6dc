"""The docker backend against a real engine. No Docker engine runs on this
project's machines (the `docker` command is only a client), so these skip there
with that reason; on a host with an engine they run."""

from __future__ import annotations

import pytest

from outrider.envs.sandbox import Limits, LimitHit, make_sandbox
from outrider.envs.sandbox.docker import DockerSandbox

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def docker_sandbox():
    reason = DockerSandbox.unavailable_reason()
    if reason is not None:
        pytest.skip(f"no Docker engine on this host: {reason}")
    return make_sandbox("docker")


def test_docker_runs_a_snippet(docker_sandbox):
    result = docker_sandbox.run("print(6 * 7)", Limits(wall_time_s=60))
    assert (result.stdout, result.exit_code, result.limit_hit, result.backend) == ("42\n", 0, LimitHit.NONE, "docker")


def test_docker_has_no_network(docker_sandbox):
    # Shown from inside without sending anything: only loopback, no route off it.
    code = (
        "import socket\n"
        "names = sorted(n for _, n in socket.if_nameindex())\n"
        "routes = [l.split()[0] for l in open('/proc/net/route').read().splitlines()[1:] if l.split()[0] != 'lo']\n"
        "print(names, routes)\n"
    )
    assert docker_sandbox.run(code, Limits(wall_time_s=60)).stdout == "['lo'] []\n"


def test_docker_wall_time_kills_the_container(docker_sandbox):
    result = docker_sandbox.run("import time\ntime.sleep(60)\n", Limits(wall_time_s=3))
    assert result.limit_hit is LimitHit.WALL_TIME

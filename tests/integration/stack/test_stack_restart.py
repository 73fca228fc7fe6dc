"""Issue 17: `LocalStack.restart_dead` brings a dead service back on its port, within a budget.

A real env service and an embedded Redis, SIGKILLed; readiness is read from the
service's own gRPC health service.
"""

from __future__ import annotations

import json
import os
import signal

import pytest

from outrider.config import parse_config
from outrider.stack import STATE_FILE, LocalStack, StackError, wait_serving

pytestmark = pytest.mark.slow  # each test starts an env service, one twice


def _run(tmp_path):
    return parse_config({
        "name": "restart",
        "output_dir": str(tmp_path),
        "stack": {"services": ["env"]},
        "env": {"builtin_envs": ["math"]},
        "redis": {"embedded": {"persistence": True, "data_dir": str(tmp_path / "redis")}},
    })


def _sigkill(process) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def test_a_dead_service_comes_back_on_its_port_until_the_budget_is_spent(tmp_path):
    with LocalStack(_run(tmp_path), tmp_path / "run", restarts=1) as stack:
        assert stack.restart_dead() == []
        address, first = stack.addresses()["env"], stack.services["env"].process
        _sigkill(first)
        assert stack.restart_dead() == ["env"]
        second = stack.services["env"].process
        assert second.pid != first.pid and second.poll() is None
        assert stack.addresses()["env"] == address
        wait_serving(address, timeout_s=5)
        assert stack.exits == {"env": [-9]}
        # The dead one's log is kept beside the new one's.
        assert (tmp_path / "run" / "stack" / "env.1.log").exists()
        assert json.loads((tmp_path / "run" / "stack" / STATE_FILE).read_text())["addresses"]["env"] == address
        _sigkill(second)
        with pytest.raises(StackError, match=r"service 'env' \(pid \d+\) stopped: killed by signal 9(.|\n)*restart budget spent \(1 restarts\)"):
            stack.restart_dead()


def test_a_dead_embedded_redis_comes_back_with_its_data(tmp_path):
    with LocalStack(_run(tmp_path), tmp_path / "run", restarts=1) as stack:
        client = stack.redis.client()
        client.sadd("restart:bus:produced", "g1")
        url = stack.redis.url
        _sigkill(stack.redis.server._process)
        assert stack.restart_dead() == ["redis"]
        assert stack.redis.url == url and stack.exits == {"redis": [-9]}
        assert client.smembers("restart:bus:produced") == {b"g1"}

"""Issue 17: an embedded Redis that dies comes back on its port, with its data when persistent.

Real valkey-servers, SIGKILLed; what survives is read back with plain commands.
"""

from __future__ import annotations

import os
import signal
import socket

import pytest
import redis

from outrider.config.common import RedisConfig
from outrider.process import free_port as process_free_port
from outrider.transport import embedded, open_redis, start_embedded


def _kill(handle) -> None:
    process = handle.server._process
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _config(**embedded) -> RedisConfig:
    return RedisConfig.model_validate({"embedded": embedded})


def test_a_persistent_server_comes_back_on_its_port_with_every_acknowledged_write(tmp_path):
    handle = open_redis(_config(persistence=True, data_dir=str(tmp_path / "redis")))
    try:
        url = handle.url
        client = redis.Redis.from_url(url)
        client.xadd("bus:stream", {"gid": "g1"})
        client.sadd("bus:produced", "g1", "g2")
        client.incr("seq")
        assert handle.exit_code() is None
        _kill(handle)
        assert handle.exit_code() == -signal.SIGKILL
        handle.restart()
        assert handle.url == url and handle.exit_code() is None
        # The same client reconnects: appendfsync always put every write on disk before its reply.
        assert client.smembers("bus:produced") == {b"g1", b"g2"}
        assert [f[b"gid"] for _, f in client.xrange("bus:stream")] == [b"g1"]
        assert client.get("seq") == b"1"
        client.close()
    finally:
        handle.close()


def test_a_volatile_server_comes_back_on_its_port_empty():
    handle = open_redis(_config())
    try:
        client = redis.Redis.from_url(handle.url)
        client.set("key", "value")
        _kill(handle)
        handle.restart()
        assert client.get("key") is None
        assert client.ping()
        client.close()
    finally:
        handle.close()


def test_restart_of_a_redis_not_started_here_is_refused():
    handle = open_redis(RedisConfig(url="redis://127.0.0.1:1/0"))
    assert handle.exit_code() is None
    with pytest.raises(RuntimeError, match="not started here"):
        handle.restart()


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_a_free_port_taken_before_the_server_binds_it_is_given_up_for_another(monkeypatch, caplog):
    # The race CI hit: two servers starting at the same moment picked the same port.
    # Here the first port offered is one our own listener holds.
    taken = _listener()
    offered = [taken.getsockname()[1]]
    monkeypatch.setattr(embedded, "free_port", lambda: offered.pop(0) if offered else process_free_port())
    try:
        with caplog.at_level("WARNING", logger=embedded.__name__):
            server = start_embedded()
        try:
            assert server.port != taken.getsockname()[1]
            assert redis.Redis(port=server.port).ping()
            assert "lost its port to another process" in caplog.text
        finally:
            server.stop()
    finally:
        taken.close()


def test_a_port_the_caller_chose_that_is_taken_is_an_error():
    taken = _listener()
    try:
        with pytest.raises(OSError, match=f"Port {taken.getsockname()[1]} is already in use"):
            start_embedded(port=taken.getsockname()[1])
    finally:
        taken.close()

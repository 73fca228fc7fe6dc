"""Issue 17: commands that start a bus say what a Redis restart would lose.

Against real embedded valkey servers, configured three ways; the mode is read from
the server's own CONFIG, and the expected modes are the configurations set here.
"""

from __future__ import annotations

import redis

from outrider.transport.embedded import start_embedded
from outrider.transport.persistence import check, warning


def _mode(server) -> str:
    client = redis.Redis.from_url(server.connection_url)
    try:
        return check(client).mode
    finally:
        client.close()


def test_the_mode_is_read_from_the_servers_config(tmp_path):
    volatile = start_embedded()
    durable = start_embedded(data_dir=tmp_path / "aof", persistence=True)
    try:
        assert _mode(volatile) == "none"
        assert _mode(durable) == "aof-always"
        client = redis.Redis.from_url(volatile.connection_url)
        client.config_set("save", "3600 1")
        assert _mode(volatile) == "rdb"
        client.config_set("appendonly", "yes")
        client.config_set("appendfsync", "everysec")
        assert _mode(volatile) == "aof-everysec"
        client.close()
    finally:
        volatile.stop()
        durable.stop()


def test_only_an_append_only_file_silences_the_warning():
    from outrider.transport.persistence import Persistence

    assert warning(Persistence("aof-always"), "the bus") is None
    assert warning(Persistence("aof-everysec"), "the bus") is None
    loud = warning(Persistence("none"), "the bus of this stack")
    assert loud.startswith("WARNING: the bus of this stack runs on a Redis without an append-only file (persistence: none)")
    assert "retried groups train twice" in loud and "redis.embedded.persistence: true" in loud
    assert "since its last snapshot" in warning(Persistence("rdb"), "the bus")

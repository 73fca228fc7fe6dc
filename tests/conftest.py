"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

# What the Makefile exports, for runs of pytest without make.
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "outrider" / "torch_extensions"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SYSTEM_REDIS_URL = "redis://127.0.0.1:6379/0"


def system_redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(SYSTEM_REDIS_URL, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def embedded_redis_url():
    """An embedded valkey-server for the whole session."""
    from outrider.transport import start_embedded

    server = start_embedded()
    yield server.connection_url
    server.stop()


@pytest.fixture(scope="session", params=["system", "embedded"])
def redis_url(request):
    """Each test using this runs against the machine's Redis (when reachable) and the embedded server."""
    if request.param == "system":
        if not system_redis_available():
            pytest.skip(f"no Redis at {SYSTEM_REDIS_URL} (the embedded variant still runs)")
        return SYSTEM_REDIS_URL
    return request.getfixturevalue("embedded_redis_url")


@pytest.fixture
def bus_prefix() -> str:
    """A fresh key prefix so tests sharing a Redis never see each other's data."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def any_redis_url(request):
    """One Redis for tests that are not about Redis itself: the machine's, else embedded."""
    if system_redis_available():
        return SYSTEM_REDIS_URL
    return request.getfixturevalue("embedded_redis_url")

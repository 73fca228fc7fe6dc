"""A Redis you name may be TLS-only with a password: the components reach it through the
run's `rediss://` URL alone (the bus, Celery's broker, the capture store's client).

The server is Debian's redis-server (built with TLS) started by this test on a free
loopback port with a CA and certificate from outrider.serving.credentials; the embedded
Valkey is built without TLS, which is why a TLS Redis is always one the user names."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
import redis

from outrider.config import BusConfig, parse_config
from outrider.rollout.worker import QUEUE, make_app
from outrider.serving.credentials import generate
from outrider.transport import RedisReceiver, RedisSender
from testkit.bus import make_group

REDIS_SERVER = shutil.which("redis-server")
PASSWORD = "tls-test-password-0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    if REDIS_SERVER is None:
        pytest.skip("no redis-server binary on this machine (Debian's redis-server has TLS)")
    folder = generate(tmp_path_factory.mktemp("redis-tls") / "auth", tls=True)
    port = _free_port()
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", "0", "--bind", "127.0.0.1", "--tls-port", str(port),
         "--tls-cert-file", str(folder / "server.pem"), "--tls-key-file", str(folder / "server-key.pem"),
         "--tls-ca-cert-file", str(folder / "ca.pem"), "--tls-auth-clients", "no",
         "--requirepass", PASSWORD, "--save", "", "--appendonly", "no"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={folder / 'ca.pem'}&ssl_cert_reqs=required"
    deadline = time.monotonic() + 20
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.exceptions.ConnectionError:
            if process.poll() is not None:
                output = process.stdout.read()
                if "TLS" in output and "not" in output.lower():
                    pytest.skip(f"this redis-server has no TLS: {output[-300:]}")
                raise AssertionError(f"redis-server exited: {output[-2000:]}") from None
            assert time.monotonic() < deadline, "redis-server did not answer over TLS"
            time.sleep(0.1)
    yield url, port
    process.terminate()
    process.wait(timeout=10)


def test_plaintext_and_passwordless_clients_get_nothing(tls_redis):
    url, port = tls_redis
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis(host="127.0.0.1", port=port, socket_timeout=3).ping()  # no TLS
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(url.replace(f":{PASSWORD}@", ":wrong@")).ping()


def test_the_bus_works_over_tls(tls_redis):
    url, _ = tls_redis
    cfg = BusConfig(prefix="tls-bus")
    client = redis.Redis.from_url(url)
    receiver = RedisReceiver(client, cfg, name="learner")
    assert RedisSender(redis.Redis.from_url(url), cfg).send(make_group("g-tls-1"))
    deliveries = receiver.receive(4, block_s=1.0)
    assert [d.group.group_id for d in deliveries] == ["g-tls-1"]
    assert receiver.commit(deliveries)
    assert receiver.committed_ids() == {"g-tls-1"}


def test_celery_sends_rollout_tasks_over_tls(tls_redis):
    url, _ = tls_redis
    run = parse_config({"name": "tls", "redis": {"url": url}})
    app = make_app(run)
    app.send_task("outrider.test.noop", args=[1], queue=QUEUE)
    # Counted with a plain client of our own: the task is in the broker's queue list (under
    # the run's key prefix, which keeps runs sharing a Redis apart).
    prefix = app.conf.broker_transport_options.get("global_keyprefix", "")
    assert redis.Redis.from_url(url).llen(f"{prefix}{QUEUE}") == 1

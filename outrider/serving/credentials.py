"""Credentials on disk: what a server is given, what a client presents, and how a local run
makes its own.

A credentials folder (made by `generate`, or a Kubernetes Secret mounted with the same
names) holds:

    admin.token, client.token     one bearer token each (the server reads both)
    ca.pem                        with TLS: the CA that signed every certificate below
    server.pem, server-key.pem    the servers' certificate (127.0.0.1, ::1, localhost)
    admin.pem, admin-key.pem      client certificates, common names outrider-admin
    client.pem, client-key.pem    and outrider-client (AuthConfig.cert_roles)

A process finds its credentials by `ClientCredentials.from_env()`: OUTRIDER_AUTH_DIR (the
folder) and OUTRIDER_AUTH_ROLE (`client` or `admin`, default client), or OUTRIDER_TOKEN
(a token itself) — what `outrider up`/`train` set for the processes they start.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from outrider.config.common import AuthConfig, Role, TlsConfig

ENV_DIR = "OUTRIDER_AUTH_DIR"
ENV_ROLE = "OUTRIDER_AUTH_ROLE"
ENV_TOKEN = "OUTRIDER_TOKEN"


def _read(path: str | Path, field: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{field}: cannot read {path}: {exc.strerror or exc}") from None


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    """TLS for a gRPC port; with `client_ca_file`, clients must present a certificate it signed."""
    ca = _read(tls.client_ca_file, "auth.tls.client_ca_file") if tls.client_ca_file else None
    return grpc.ssl_server_credentials(
        [(_read(tls.key_file, "auth.tls.key_file"), _read(tls.cert_file, "auth.tls.cert_file"))],
        root_certificates=ca,
        require_client_auth=ca is not None,
    )


@dataclass(frozen=True)
class ClientCredentials:
    """What a client presents: a bearer token and/or TLS material (all optional)."""

    token: str | None = None
    ca_file: str | None = None
    """Trust this CA for the server's certificate; set, the channel is TLS."""
    cert_file: str | None = None
    key_file: str | None = None
    """This client's certificate and key (mTLS)."""

    @classmethod
    def from_folder(cls, folder: str | Path, role: Role = "client") -> ClientCredentials:
        """The `role`'s credentials in a folder laid out as this module's docstring says."""
        folder = Path(folder)
        token_path = folder / f"{role}.token"
        token = _read(token_path, "credentials").decode().strip() if token_path.exists() else None
        if (folder / "ca.pem").exists():
            cert, key = folder / f"{role}.pem", folder / f"{role}-key.pem"
            return cls(token, str(folder / "ca.pem"), str(cert) if cert.exists() else None, str(key) if key.exists() else None)
        if token is None:
            raise ValueError(f"credentials: {folder} holds neither {role}.token nor ca.pem")
        return cls(token)

    @classmethod
    def from_env(cls, environ: dict | None = None) -> ClientCredentials:
        """Credentials named by the environment; none set: no credentials."""
        environ = os.environ if environ is None else environ
        if environ.get(ENV_TOKEN):
            return cls(environ[ENV_TOKEN].strip())
        if environ.get(ENV_DIR):
            role = environ.get(ENV_ROLE, "client")
            if role not in ("client", "admin"):
                raise ValueError(f"{ENV_ROLE}: {role!r} is not a role (client or admin)")
            return cls.from_folder(environ[ENV_DIR], role)
        return cls()

    @property
    def tls(self) -> bool:
        return self.ca_file is not None

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context for HTTPS (the policy's OpenAI API): the CA, and this
        client's certificate when it has one."""
        if self.ca_file is None:
            raise ValueError("credentials: no CA (ca.pem) to trust a TLS server with")
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file and self.key_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def channel_credentials(self) -> grpc.ChannelCredentials:
        chain = _read(self.cert_file, "credentials.cert_file") if self.cert_file else None
        key = _read(self.key_file, "credentials.key_file") if self.key_file else None
        # The token travels as plain metadata (`_TokenInterceptor`), not as call credentials:
        # gRPC Python runs a call-credentials plugin on a thread per call, which measured
        # +2 ms a call (bench/auth.py).
        return grpc.ssl_channel_credentials(_read(self.ca_file, "credentials.ca_file"), key, chain)


class _TokenInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                        grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the bearer token to every call's metadata (on plaintext loopback channels gRPC's
    call credentials would refuse to travel at all; on TLS they cost a thread hop a call)."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]):
        self._metadata = metadata

    def _details(self, details):
        return details._replace(metadata=tuple(details.metadata or ()) + self._metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details), requests)


def open_channel(address: str, options: list | None = None, credentials: ClientCredentials | None = None) -> grpc.Channel:
    """A synchronous channel to one of Outrider's services presenting `credentials`
    (None: those named by the environment)."""
    creds = ClientCredentials.from_env() if credentials is None else credentials
    options = list(options or [])
    if creds.tls:
        channel = grpc.secure_channel(address, creds.channel_credentials(), options=options)
    else:
        channel = grpc.insecure_channel(address, options=options)
    return grpc.intercept_channel(channel, _TokenInterceptor(creds.metadata())) if creds.token else channel


def open_aio_channel(address: str, options: list | None = None, credentials: ClientCredentials | None = None) -> grpc.aio.Channel:
    """`open_channel` for grpc.aio."""
    creds = ClientCredentials.from_env() if credentials is None else credentials
    options = list(options or [])
    interceptors = [_AioToken(creds.metadata())] if creds.token else None
    if creds.tls:
        return grpc.aio.secure_channel(address, creds.channel_credentials(), options=options, interceptors=interceptors)
    return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)


class _AioToken(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor,
                grpc.aio.StreamUnaryClientInterceptor, grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, metadata: tuple[tuple[str, str], ...]):
        self._metadata = metadata

    def _details(self, details):
        metadata = grpc.aio.Metadata(*tuple(details.metadata or ()), *self._metadata)
        return details._replace(metadata=metadata)

    async def intercept_unary_unary(self, continuation, details, request):
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(self, continuation, details, request):
        return await continuation(self._details(details), request)

    async def intercept_stream_unary(self, continuation, details, requests):
        return await continuation(self._details(details), requests)

    async def intercept_stream_stream(self, continuation, details, requests):
        return await continuation(self._details(details), requests)


# --- making a run's own credentials -------------------------------------------------------


def _write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read (created 0600, never world-readable in between)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def generate(folder: str | Path, tls: bool = False, days: int = 30) -> Path:
    """Fresh credentials for one run in `folder` (mode 0700): two tokens and, with `tls`, a CA,
    a server certificate for loopback and one client certificate per role."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    for role in ("admin", "client"):
        _write_private(folder / f"{role}.token", (secrets.token_urlsafe(32) + "\n").encode())
    if tls:
        _generate_certificates(folder, days)
    return folder


def server_auth(folder: str | Path) -> AuthConfig:
    """The `AuthConfig` of a server that accepts the credentials in `folder`."""
    folder = Path(folder)
    token_files = {role: str(folder / f"{role}.token") for role in ("admin", "client") if (folder / f"{role}.token").exists()}
    tls = None
    if (folder / "ca.pem").exists():
        tls = TlsConfig(cert_file=str(folder / "server.pem"), key_file=str(folder / "server-key.pem"),
                        client_ca_file=str(folder / "ca.pem"))
    return AuthConfig(token_files=token_files, tls=tls)


def _generate_certificates(folder: Path, days: int) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def save(stem: str, key, cert) -> None:
        (folder / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_private(folder / f"{stem}-key.pem", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    def issue(common_name: str, ca_key, ca_name, usage, sans=None, is_ca=False):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(name(common_name)).issuer_name(ca_name or name(common_name))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True))
        if usage:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return key, builder.sign(ca_key or key, hashes.SHA256())

    ca_key, ca_cert = issue("outrider-run-ca", None, None, None, is_ca=True)
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    loopback = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1"))]
    save("server", *issue("outrider-server", ca_key, ca_cert.subject, [ExtendedKeyUsageOID.SERVER_AUTH], loopback))
    for role in ("admin", "client"):
        save(role, *issue(f"outrider-{role}", ca_key, ca_cert.subject, [ExtendedKeyUsageOID.CLIENT_AUTH]))


__all__ = ["ClientCredentials", "generate", "open_aio_channel", "open_channel", "server_auth", "server_credentials"]

"""Config pieces shared by every service: serving, logging, Redis, the bus."""

from __future__ import annotations

import os
import re
from typing import Annotated, Literal
from urllib.parse import quote

from pydantic import AfterValidator, Field

from outrider.config.base import ConfigModel

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env_references(url: str | None) -> str | None:
    """`${NAME}` in a URL -> the value of environment variable NAME, percent-encoded.

    Why: in a cluster the Redis password comes from a Secret as an environment variable
    (the Helm chart writes `redis://:${OUTRIDER_REDIS_PASSWORD}@host:6379/0` into its
    ConfigMap), so the password is never in a ConfigMap. Expanded when the config loads;
    an unset variable is an error naming the field."""
    if url is None:
        return None

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ValueError(f"names the environment variable {name}, which is not set")
        return quote(os.environ[name], safe="")

    return _ENV_REFERENCE.sub(value, url)


SecretUrl = Annotated[str, AfterValidator(_expand_env_references)]
"""A URL that may carry `${NAME}` references to environment variables (its password)."""


class LogConfig(ConfigModel):
    level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest log level that is written."""
    format: Literal["text", "json"] = "text"
    """`json` writes one JSON object per line (for log collectors); `text` is for people."""


Role = Literal["client", "admin"]
"""A caller's role (outrider.serving.auth): `client` uses services, `admin` also changes them
(RegisterEnv, UnregisterEnv, UpdateWeights)."""


class TlsConfig(ConfigModel):
    cert_file: str = Field(min_length=1)
    """PEM certificate chain the server presents (its names must match the address clients dial)."""
    key_file: str = Field(min_length=1)
    """PEM private key of `cert_file`."""
    client_ca_file: str | None = None
    """PEM CA bundle; set, every client must present a certificate this CA signed (mTLS) and
    its common name selects the role (`auth.cert_roles`)."""


class AuthConfig(ConfigModel):
    """Who may call this server (docs/security.md). With nothing set, the server authenticates
    no one, which it allows only on a loopback host or with `insecure: true`."""

    token_files: dict[Role, str] = Field(default_factory=dict)
    """Bearer tokens by role: a file per role with one token per line (several allow
    rotation); clients send `authorization: Bearer <token>`. Admin tokens pass client calls."""
    tls: TlsConfig | None = None
    """Serve TLS (and, with `client_ca_file`, mTLS) instead of plaintext."""
    cert_roles: dict[str, Role] = Field(default_factory=lambda: {"outrider-admin": "admin", "outrider-client": "client"})
    """mTLS: role of a verified client certificate by its subject common name; a certificate
    whose name is not listed is refused (PERMISSION_DENIED)."""
    insecure: bool = False
    """Serve without authentication on a non-loopback host (anyone who can connect may
    replace environments and weights). Must be said explicitly."""


class ServerConfig(ConfigModel):
    host: str = "127.0.0.1"
    """Interface the gRPC server binds to; `0.0.0.0` in a container."""
    port: int = Field(0, ge=0, le=65535)
    """gRPC port; 0 picks a free port (the chosen one is logged and printed)."""
    metrics_port: int | None = Field(0, ge=0, le=65535)
    """Port of the Prometheus `/metrics` endpoint; 0 picks a free port, null disables it."""
    grace_s: float = Field(5.0, ge=0, le=600)
    """On SIGTERM/SIGINT, in-flight calls get this many seconds to finish."""
    max_concurrent_rpcs: int | None = Field(None, ge=1)
    """Calls beyond this many at once are refused with RESOURCE_EXHAUSTED; null: unbounded."""
    max_message_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    """Largest gRPC message accepted or sent, in bytes."""
    max_concurrent_rpcs_per_client: int | None = Field(None, ge=1)
    """Calls one client may have in flight at once (a client: one token or certificate name;
    without authentication, one peer address); more are refused with RESOURCE_EXHAUSTED.
    Null: no per-client bound."""
    per_client_retry_after_ms: int = Field(200, ge=1, le=600_000)
    """Retry hint of a refusal by `max_concurrent_rpcs_per_client` (trailing metadata
    `retry-after-ms`, and "retry in N ms" in the message)."""
    auth: AuthConfig = AuthConfig()
    """Authentication and roles of callers (tokens, TLS/mTLS)."""
    log: LogConfig = LogConfig()
    """Logging of this process."""


class EmbeddedRedisConfig(ConfigModel):
    persistence: bool = False
    """Write an append-only file (fsync on every write) so a restarted server keeps its data."""
    data_dir: str | None = None
    """Folder for the server's files; null: a temporary folder removed on exit."""
    port: int = Field(0, ge=0, le=65535)
    """Loopback port; 0 picks a free one."""


class RedisConfig(ConfigModel):
    url: SecretUrl | None = None
    """Redis URL (`redis://host:port/db`; `rediss://` for TLS). Null starts an embedded Valkey
    server on loopback. `${NAME}` is replaced by environment variable NAME, percent-encoded
    (`redis://:${OUTRIDER_REDIS_PASSWORD}@host:6379/0`: the password from a Secret)."""
    embedded: EmbeddedRedisConfig = EmbeddedRedisConfig()
    """Settings of the embedded server (used only when `url` is null)."""
    socket_timeout_s: float = Field(30.0, gt=0)
    """Timeout of one Redis command, seconds (blocking reads add their own block time)."""


class BusConfig(ConfigModel):
    prefix: str = Field("outrider", min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    """Key prefix of every key the bus owns; give each run its own to keep runs apart."""
    consumer_group: str = Field("learner", min_length=1)
    """Redis consumer group the learner reads through."""
    max_len: int = Field(1024, ge=1)
    """Backpressure bound: producers wait while this many groups are queued or unacknowledged."""
    block_ms: int = Field(1000, ge=0)
    """How long one receive waits for new groups, milliseconds."""
    claim_idle_ms: int = Field(60_000, ge=100)
    """Groups pending this long with a silent consumer are reclaimed by a live one (ms).
    Longer than the longest learner step, or a slow consumer's lease expires."""
    send_timeout_s: float | None = Field(None, gt=0)
    """Give up a send after this long (backpressure or Redis down); null waits forever."""
    retry_backoff_s: float = Field(0.2, gt=0, le=60)
    """First wait before retrying a send after a connection error; doubles up to 5 s."""
    max_deliveries: int = Field(5, ge=1)
    """A group reclaimed this many times without a commit goes to the dead-letter stream
    (it is probably what kills the consumer)."""


class WandbConfig(ConfigModel):
    """Weights & Biases: where a run's metrics and sample episodes go when `report_to`
    names `wandb`."""

    project: str = Field("outrider", min_length=1)
    """W&B project of the run (the run is named after the Outrider run)."""
    entity: str | None = None
    """W&B team or user (null: the account's default)."""
    mode: Literal["offline", "online"] = "offline"
    """`offline` writes the run under `<run_dir>/wandb/` with no network (upload it later
    with `wandb sync`); `online` streams it to the W&B server (needs an API key)."""
    group: str | None = None
    """W&B group, e.g. one experiment's arms (null: none)."""
    tags: list[str] = Field(default_factory=list)
    """W&B tags of the run."""


Tracker = Literal["tensorboard", "wandb"]
"""An experiment tracker: TensorBoard event files in `<run_dir>/tensorboard/`, or W&B."""

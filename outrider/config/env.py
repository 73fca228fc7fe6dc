"""Config of the environment service (registered environments, sessions, sandbox)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from outrider.config.base import ConfigModel
from outrider.config.common import ServerConfig
from outrider.config.names import BUILTIN_ENV_NAMES, BuiltinEnvName  # generated from envs/builtin (make catalog)

# An environment's name (EnvSpec.name): 1-64 of a-z 0-9 _ . -, starting with a letter or digit.
ENV_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"

SandboxBackendName = Literal["auto", "bwrap", "gvisor", "docker", "subprocess"]

KIB = 1024
MIB = 1024 * 1024
GIB = 1024 * MIB

MODULE_NAME_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
# host (or [IPv6]) and port, each may hold shell wildcards: `*.envs.svc:*`, `[::1]:5007?`.
ENDPOINT_PATTERN_RE = re.compile(r"^(\[[0-9a-fA-F:*?]+\]|[^\s:]+):[0-9*?\[\]!-]+$")


class SandboxLimitsConfig(ConfigModel):
    """Default limits of one sandboxed run (an EnvSpec's non-zero `sandbox` limits override them)."""

    wall_time_s: float = Field(10.0, gt=0, le=3600)
    """Wall-clock limit, seconds; the whole sandbox is killed when it is reached."""
    cpu_time_s: float = Field(10.0, gt=0, le=3600)
    """CPU-time limit of each process (RLIMIT_CPU; gVisor: measured from the host), seconds."""
    memory_bytes: int = Field(512 * MIB, ge=16 * MIB, le=256 * GIB)
    """Memory of the whole run (bwrap with cgroups: memory.max) and address space of each
    process (RLIMIT_AS), bytes."""
    max_processes: int = Field(32, ge=1, le=4096)
    """Most processes and threads the program may have at once (bwrap with cgroups: pids.max of
    the run; else RLIMIT_NPROC of its own user)."""
    max_output_bytes: int = Field(64 * KIB, ge=KIB, le=64 * MIB)
    """stdout and stderr are each kept up to this many bytes; more output stops the program."""
    max_file_bytes: int = Field(16 * MIB, ge=KIB, le=16 * GIB)
    """Largest file the program may write (RLIMIT_FSIZE), bytes."""


class SandboxMaximaConfig(SandboxLimitsConfig):
    """The largest limits an EnvSpec's `sandbox` may ask for; the env service refuses a spec
    above one (without cgroups the limits are RLIMITs, per process: the host must be sized for
    what specs may ask)."""

    wall_time_s: float = Field(300.0, gt=0, le=3600)
    """Largest wall-clock limit of one run, seconds."""
    cpu_time_s: float = Field(300.0, gt=0, le=3600)
    """Largest CPU-time limit of each process, seconds."""
    memory_bytes: int = Field(8 * GIB, ge=16 * MIB, le=256 * GIB)
    """Largest memory limit of one run (and address space of each of its processes), bytes."""
    max_processes: int = Field(256, ge=1, le=4096)
    """Largest process and thread count of one run."""
    max_output_bytes: int = Field(16 * MIB, ge=KIB, le=64 * MIB)
    """Largest kept stdout (and stderr) of one run, bytes."""
    max_file_bytes: int = Field(1 * GIB, ge=KIB, le=16 * GIB)
    """Largest file a run may write, bytes."""


class SandboxConfig(ConfigModel):
    """Where code that environments (and verifiers) run is executed."""

    backend: SandboxBackendName = "auto"
    """`auto` picks bwrap, else gvisor; `subprocess` (no isolation) only when named explicitly."""
    limits: SandboxLimitsConfig = SandboxLimitsConfig()
    """Default limits of every run."""
    python: str | None = None
    """Interpreter used inside the sandbox for `python3`; null: /usr/bin/python3 (or /usr/local/bin/python3)."""
    ro_binds: list[str] = Field(default_factory=list)
    """Extra host folders mounted read-only at the same path (e.g. an interpreter outside /usr)."""
    workspace_root: str | None = None
    """Host folder under which each run gets a fresh private workspace; null: the system temp folder."""
    tmp_bytes: int = Field(64 * MIB, ge=MIB, le=16 * GIB)
    """Size of the sandbox's private in-memory /tmp (bwrap, gvisor, docker), bytes."""
    workspace_bytes: int = Field(64 * MIB, ge=MIB, le=16 * GIB)
    """Size of a bwrap run's in-memory workspace /work (program files + what it writes), bytes."""
    uid_base: int = Field(1_000_000, ge=1000, le=2**31 - 2**17)
    """When the service runs as root, each concurrent run gets its own host uid from
    [uid_base, uid_base + 65536) so process limits and files of runs never mix."""
    docker_image: str = Field("python:3.11-slim", min_length=1)
    """Image of the docker backend (must contain python3)."""
    max_concurrent_runs: int = Field(8, ge=1, le=1024)
    """Runs executing at once through `arun`; more wait their turn."""
    seccomp: bool = True
    """bwrap: a seccomp filter refuses ptrace, mount, namespaces, keyrings, bpf, perf, module and
    clock calls... to the program (docs/security.md lists them); off only to debug a program."""
    cgroups: Literal["auto", "v2", "v1", "off"] = "auto"
    """bwrap: per-run cgroups so memory, process and CPU limits count the whole run, not each
    process; `auto` takes v2, else v1, else rlimits only (logged at start); `v2`/`v1` refuse to
    start without that one."""
    cgroup_parent: str | None = Field(None, pattern=r"^/?[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")
    """bwrap: cgroup path (in the hierarchy) under which run cgroups are made; null: v2 the
    service's own cgroup (delegated), v1 `outrider-sandbox` under each controller's mount."""
    cpu_cores: float | None = Field(1.0, ge=0.01, le=1024)
    """bwrap with cgroups: CPU rate of one run (cpu.max / cfs quota), cores; null: unlimited."""


class EnvServiceConfig(ConfigModel):
    kind: Literal["env"] = "env"
    """Config kind marker (lets `outrider config validate` pick the model)."""
    server: ServerConfig = ServerConfig()
    """gRPC server settings."""
    builtin_envs: list[BuiltinEnvName] = Field(default_factory=lambda: list(BUILTIN_ENV_NAMES))
    """Built-in environments registered at start."""
    builtin_params: dict[BuiltinEnvName, dict[str, str]] = Field(default_factory=dict)
    """Constructor parameters of built-in environments (EnvSpec.params), e.g. `{math: {difficulty: "0"}}`."""
    spec_files: list[str] = Field(default_factory=list)
    """EnvSpec YAML files registered at start (see examples/envs/)."""
    session_ttl_s: float = Field(600.0, ge=1, le=86_400)
    """A session idle this long is closed and its resources freed, seconds."""
    max_sessions: int = Field(1024, ge=1, le=1_000_000)
    """Open sessions at most; CreateSession beyond that answers RESOURCE_EXHAUSTED."""
    max_action_bytes: int = Field(64 * KIB, ge=16, le=16 * MIB)
    """Largest accepted action text (UTF-8 bytes); larger ones answer INVALID_ARGUMENT."""
    cleanup_interval_s: float = Field(5.0, gt=0, le=3600)
    """How often expired sessions are looked for, seconds."""
    list_tasks_page_size: int = Field(100, ge=1, le=100_000)
    """Tasks returned by ListTasks when the request's limit is 0."""
    remote_timeout_s: float = Field(30.0, gt=0, le=3600)
    """Deadline of a call proxied to a remote environment (`remote.timeout_s`) or to an OpenEnv
    server (`openenv.timeout_s`) whose spec gives none, seconds."""
    sandbox: SandboxConfig = SandboxConfig()
    """The sandbox of code-running environments."""
    agent_gateway: str | None = Field(None, pattern=r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$")
    """`host:port` of the policy service's HTTP API, the only address agent programs
    (kind `agent`, docs/agents.md) can reach; null: RunAgent is refused. `outrider up` and
    `train` set it."""
    agent_gateway_tls: bool = False
    """The gateway serves HTTPS (an mTLS stack): the env service connects with TLS, trusting
    and presenting its own credentials (OUTRIDER_AUTH_DIR), and relays the agent's plain
    HTTP inside it; the agent never holds a credential."""
    agent_limits: SandboxLimitsConfig = SandboxLimitsConfig(
        wall_time_s=300, cpu_time_s=300, memory_bytes=8 * GIB, max_processes=128, max_output_bytes=KIB * 64)
    """Default limits of an agent run (an agent spec's `sandbox` overrides them). An agent
    waits on the policy for most of its time, and runtimes such as Node.js reserve GiBs of
    address space up front, hence the larger defaults."""
    max_sandbox_limits: SandboxMaximaConfig = SandboxMaximaConfig()
    """The largest sandbox limits an EnvSpec may ask for (each field separately); a spec above
    one is refused at registration naming the field and the maximum."""
    allowed_python_modules: list[str] = Field(
        default_factory=lambda: ["outrider.envs.builtin", "outrider.envs.examples"], max_length=1024
    )
    """Modules (with their submodules) whose classes a RegisterEnv request may name as entry
    point; any other module is refused before it is imported. Environments of `builtin_envs`
    and `spec_files` are the operator's own and need no entry here."""
    entry_point_import_timeout_s: float = Field(60.0, gt=0, le=3600)
    """A RegisterEnv entry point's module is imported first in a child process, which must
    finish within this many seconds (an exception, exit or crash there refuses the spec)."""
    allowed_remote_endpoints: list[str] = Field(
        default_factory=lambda: ["127.0.0.1:*", "localhost:*", "[::1]:*"], max_length=1024
    )
    """`host:port` patterns (shell-style: `*`, `?`, `[...]`; case-insensitive) a remote spec's
    address and an openenv spec's `base_url` (its host and port; the scheme's port when it
    names none) must match, e.g. `envs.example.svc:50071` or `*.envs.svc:*`. Link-local and
    unspecified addresses, metadata host names and gRPC schemes such as `unix:` are refused
    whatever this says."""

    @field_validator("allowed_python_modules")
    @classmethod
    def _module_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not MODULE_NAME_RE.match(name):
                raise ValueError(f"{name!r} is not a dotted module name like 'my_envs.games'")
        return names

    @field_validator("allowed_remote_endpoints")
    @classmethod
    def _endpoint_patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            if not ENDPOINT_PATTERN_RE.match(pattern):
                raise ValueError(f"{pattern!r} is not a 'host:port' pattern (a bracketed IPv6 host, no scheme)")
        return patterns

    @model_validator(mode="after")
    def _defaults_within_maxima(self) -> EnvServiceConfig:
        for name in SandboxLimitsConfig.model_fields:
            value, cap = getattr(self.sandbox.limits, name), getattr(self.max_sandbox_limits, name)
            if value > cap:
                raise ValueError(f"sandbox.limits.{name} ({value}) exceeds max_sandbox_limits.{name} ({cap})")
        return self

    @field_validator("builtin_envs")
    @classmethod
    def _unique(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError("lists an environment twice")
        return names

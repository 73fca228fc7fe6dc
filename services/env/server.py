"""`create_server(cfg)`: the env service with its sandbox, registry and sessions.

At start it builds the sandbox (`sandbox.backend`; with `auto` and no usable
backend it starts anyway, and environments that need a sandbox refuse to
start episodes, naming why), registers the configured built-in environments
and spec files (a bad one stops the start with the file and field named;
they are trusted, while RegisterEnv requests pass `outrider.envs.admission`), and
runs the idle-session cleanup until the server stops.
"""

from __future__ import annotations

import asyncio
import logging

from outrider.config.env import EnvServiceConfig
from outrider.config.base import ConfigError
from outrider.envs.admission import Admission
from outrider.envs.registry import EnvRegistry, builtin_spec
from outrider.envs.sandbox import SandboxUnavailable, sandbox_from_config
from outrider.envs.spec import SpecError, load_spec_file
from outrider.proto.v1 import env_pb2_grpc
from outrider.serving import BuiltServer, build_server
from outrider.services.env.agents import AgentEpisodes
from outrider.services.env.core import EnvCore
from outrider.services.env.openenv import OpenEnvs
from outrider.services.env.remote import RemoteEnvs
from outrider.services.env.servicer import EnvServicer
from outrider.services.env.sessions import SessionManager

log = logging.getLogger(__name__)

SERVICE_NAME = "outrider.v1.EnvService"


def build_registry(cfg: EnvServiceConfig) -> EnvRegistry:
    """The sandbox and every environment the config asks for; OSError when one cannot be had."""
    sandbox, reason = None, ""
    try:
        sandbox = sandbox_from_config(cfg.sandbox)
        log.info("sandbox backend: %s", sandbox.name)
    except SandboxUnavailable as exc:
        if cfg.sandbox.backend != "auto":
            raise OSError(f"sandbox.backend {cfg.sandbox.backend!r} is unavailable: {exc}") from None
        reason = str(exc)
        log.warning("no sandbox: environments that run code will refuse sessions (%s)", reason)
    registry = EnvRegistry(sandbox, reason, Admission.from_config(cfg))
    # The config's own environments are the operator's choice: trusted (no module allow-list),
    # but still held to the sandbox maxima and the remote-endpoint rules.
    for name in cfg.builtin_envs:
        try:
            registry.register(builtin_spec(name, cfg.builtin_params.get(name)), source=f"builtin_params.{name}", trusted=True)
        except SpecError as exc:
            raise OSError(str(exc)) from None
    for path in cfg.spec_files:
        try:
            registry.register(load_spec_file(path), source=path, trusted=True)
        except ConfigError as exc:
            raise OSError(str(exc)) from None
    return registry


async def create_server(cfg: EnvServiceConfig) -> BuiltServer:
    registry = build_registry(cfg)
    remotes = RemoteEnvs(cfg.remote_timeout_s, cfg.server.max_message_bytes)
    openenvs = OpenEnvs(cfg.remote_timeout_s, cfg.server.max_message_bytes)
    core: EnvCore | None = None

    async def close_session_backend(session) -> None:
        await core.close_backend(session)

    sessions = SessionManager(cfg.session_ttl_s, cfg.max_sessions, close_session_backend)
    core = EnvCore(registry, sessions, remotes, cfg.max_action_bytes, cfg.list_tasks_page_size, openenvs)
    core.agents = AgentEpisodes(core, cfg)
    built = build_server(
        cfg.server,
        lambda server: env_pb2_grpc.add_EnvServiceServicer_to_server(EnvServicer(core), server),
        [SERVICE_NAME],
    )
    cleanup = asyncio.get_running_loop().create_task(sessions.run_cleanup(cfg.cleanup_interval_s), name="env-session-cleanup")

    async def shutdown() -> None:
        cleanup.cancel()
        await sessions.close_all()
        await remotes.close()
        await openenvs.close()
        core.close()
        if registry.sandbox is not None:
            registry.sandbox.close()

    built.on_stop.append(shutdown)
    built.core = core
    return built

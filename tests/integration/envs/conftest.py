"""Fixtures of the environment integration tests: a real sandbox, a private workspace root."""

from __future__ import annotations

import random
import shutil
import uuid
from pathlib import Path

import pytest

from outrider.envs.sandbox import Limits, SandboxOptions, SandboxUnavailable, make_sandbox


@pytest.fixture(scope="session")
def env_sandbox():
    """bwrap (else gVisor) with a workspace root and uid range of its own."""
    root = Path("/tmp") / f"outrider-env-test-{uuid.uuid4().hex[:8]}"
    options = SandboxOptions(workspace_root=root, uid_base=random.randrange(2_000_000, 2_000_000_000, 65536))
    try:
        sandbox = make_sandbox("auto", options, Limits(wall_time_s=10, cpu_time_s=10))
    except SandboxUnavailable as exc:
        pytest.skip(f"no sandbox backend on this host: {exc}")
    yield sandbox
    sandbox.close()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def start_env_service(env_sandbox):
    """Start an env service in-process on port 0; returns (built server, aio stub). Stopped after the test."""
    import grpc

    from outrider.config.env import EnvServiceConfig, SandboxConfig
    from outrider.proto.v1 import env_pb2_grpc
    from outrider.services.env.server import create_server

    started = []

    async def start(**overrides):
        sandbox = SandboxConfig(
            workspace_root=str(env_sandbox.options.workspace_root),
            uid_base=env_sandbox.options.uid_base,
            limits={"wall_time_s": 5, "cpu_time_s": 2},
        )
        data = {"server": {"metrics_port": None}, "sandbox": sandbox.model_dump(), **overrides}
        built = await create_server(EnvServiceConfig.model_validate(data))
        await built.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{built.port}")
        started.append((built, channel))
        return built, env_pb2_grpc.EnvServiceStub(channel)

    yield start
    for built, channel in started:
        await channel.close()
        await built.stop(0)

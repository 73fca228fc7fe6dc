"""create_server(cfg) for the reward service."""

from __future__ import annotations

import asyncio

from outrider.config.reward import RewardServiceConfig
from outrider.proto.v1 import reward_pb2, reward_pb2_grpc
from outrider.serving import BuiltServer, build_server
from outrider.services.reward.core import RewardCore
from outrider.services.reward.servicer import RewardServicer

SERVICE_NAME = reward_pb2.DESCRIPTOR.services_by_name["RewardService"].full_name


async def create_server(cfg: RewardServiceConfig) -> BuiltServer:
    """A bound, not yet started server. The PRM (if any) and the sandbox are loaded first:
    a model or sandbox that cannot be had stops the start with its reason (OSError)."""
    prm = None
    if cfg.prm is not None:
        from outrider.services.reward.prm.load import load_prm

        try:
            prm = await asyncio.to_thread(load_prm, cfg.prm)
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            what = cfg.prm.model if cfg.prm.type != "ensemble" else f"{len(cfg.prm.members)} members"
            raise OSError(f"prm ({cfg.prm.type}, {what}) could not be loaded: {exc}") from exc
    try:
        core = RewardCore(cfg, prm)
    except Exception as exc:  # noqa: BLE001 - e.g. no sandbox for the code verifier: a start failure
        raise OSError(f"reward verifiers could not be built: {type(exc).__name__}: {exc}") from exc
    servicer = RewardServicer(core)
    built = build_server(cfg.server, lambda s: reward_pb2_grpc.add_RewardServiceServicer_to_server(servicer, s), [SERVICE_NAME])
    built.on_stop.append(core.close)
    built.core = core  # tests and benchmarks reach the core through the server
    return built

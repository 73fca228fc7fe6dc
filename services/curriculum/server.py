"""create_server(cfg) for the curriculum service."""

from __future__ import annotations

import logging

import redis

from outrider.config.curriculum import CurriculumServiceConfig
from outrider.proto.v1 import curriculum_pb2, curriculum_pb2_grpc
from outrider.serving import BuiltServer, build_server
from outrider.services.curriculum.core import CurriculumCore
from outrider.services.curriculum.servicer import CurriculumServicer
from outrider.services.curriculum.store import RedisCurriculumStore
from outrider.transport import open_redis
from outrider.transport.persistence import check, warning

log = logging.getLogger(__name__)

SERVICE_NAME = curriculum_pb2.DESCRIPTOR.services_by_name["CurriculumService"].full_name


async def create_server(cfg: CurriculumServiceConfig) -> BuiltServer:
    """A bound, not yet started server; task pools start loading in the background."""
    redis_handle = open_redis(cfg.redis)
    client = redis.Redis.from_url(redis_handle.url, socket_timeout=cfg.redis.socket_timeout_s)
    try:
        if loud := warning(check(client), "the curriculum's state"):
            log.warning(loud)
    finally:
        client.close()
    store = RedisCurriculumStore(redis_handle.url, cfg.key_prefix, cfg.redis.socket_timeout_s)
    core = CurriculumCore(cfg, store)
    servicer = CurriculumServicer(core)
    try:
        built = build_server(cfg.server, lambda s: curriculum_pb2_grpc.add_CurriculumServiceServicer_to_server(servicer, s), [SERVICE_NAME])
    except BaseException:
        await store.close()
        redis_handle.close()
        raise
    core.start()
    built.on_stop += [core.close, redis_handle.close]
    built.core = core  # tests and benchmarks reach the core through the server
    return built

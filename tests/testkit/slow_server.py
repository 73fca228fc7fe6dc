"""A server built with the shared skeleton, with one slow method, for drain tests.

    python -m testkit.slow_server

Serves `test.Slow/Sleep` (raw bytes: sleeps float(request) seconds, echoes the
request) until SIGTERM/SIGINT, then drains with a 10 s grace period.
"""

from __future__ import annotations

import asyncio

import grpc

from outrider.config import ServerConfig
from outrider.serving import InvalidArgument, build_server, run_until_signalled


async def sleep(request: bytes, context) -> bytes:
    try:
        seconds = float(request)
    except ValueError:
        raise InvalidArgument(f"request: expected seconds as text, got {request!r}") from None
    await asyncio.sleep(seconds)
    return request


def register(server: grpc.aio.Server) -> None:
    handler = grpc.method_handlers_generic_handler("test.Slow", {"Sleep": grpc.unary_unary_rpc_method_handler(sleep)})
    server.add_generic_rpc_handlers([handler])


async def main() -> None:
    built = build_server(ServerConfig(grace_s=10), register, ["test.Slow"])
    await run_until_signalled(built, 10, "slow")


if __name__ == "__main__":
    asyncio.run(main())

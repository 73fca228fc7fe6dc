"""The `main` of every service: parse args, load config, log, serve until signalled.

A service's `main.py` is three lines:

    def main(argv=None) -> int:
        return run_service("policy", create_server, argv)

where `create_server(cfg)` (sync or async) returns a bound `BuiltServer`.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from outrider.config import ConfigError, load_service_config
from outrider.serving.logs import configure_logging
from outrider.serving.server import BuiltServer, run_until_signalled

log = logging.getLogger(__name__)

CreateServer = Callable[[Any], BuiltServer | Awaitable[BuiltServer]]


def parse_service_args(service: str, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"outrider serve {service}", description=f"Run the {service} service.")
    parser.add_argument("--config", help=f"YAML file: a `kind: {service}` config or a run config")
    parser.add_argument("--port", type=int, help="gRPC port (overrides the config; 0 picks a free one)")
    parser.add_argument("--host", help="interface to bind (overrides the config)")
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE",
        help="overrides of the config's fields: paths in the --config file (policy.model in a run config), "
        "or in the service's config without one",
    )
    # Intermixed: overrides may come before or after the options.
    return parser.parse_intermixed_args(argv)


def load_for_service(service: str, args: argparse.Namespace):
    cfg = load_service_config(service, args.config, args.overrides)
    updates = {k: v for k, v in (("port", args.port), ("host", args.host)) if v is not None}
    if updates:
        # Validated like the file's own values (a port above 65535 is refused, naming it).
        try:
            server = type(cfg.server).model_validate({**cfg.server.model_dump(), **updates})
        except ValidationError as exc:
            flags = " ".join(f"--{k} {v}" for k, v in updates.items())
            raise ConfigError(flags, [(f"server.{'.'.join(map(str, e['loc']))}", e["msg"]) for e in exc.errors()]) from None
        cfg = cfg.model_copy(update={"server": server})
    return cfg


async def serve(service: str, cfg, create_server: CreateServer) -> None:
    built = create_server(cfg)
    if inspect.isawaitable(built):
        built = await built
    await run_until_signalled(built, cfg.server.grace_s, service)


def run_service(service: str, create_server: CreateServer, argv: list[str] | None = None) -> int:
    args = parse_service_args(service, argv)
    try:
        cfg = load_for_service(service, args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(cfg.server.log, service)
    try:
        asyncio.run(serve(service, cfg, create_server))
    except OSError as exc:
        log.error("%s could not start: %s", service, exc)
        return 1
    return 0

"""`outrider serve SERVICE` and `outrider up`."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import typer

from outrider.cli.configs import load_or_exit, overrides_argument
from outrider.config import LogConfig, RunConfig, is_override
from outrider.serving.logs import configure_logging
from outrider.services import SERVICE_MAIN_MODULES, available_services, service_main
from outrider.stack import LocalStack, StackError
from outrider.transport.embedded import redacted
from outrider.transport.persistence import Persistence, check
from outrider.transport.persistence import warning as persistence_warning


def bus_persistence(url: str) -> Persistence:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return check(client)
    finally:
        client.close()


def serve(
    ctx: typer.Context,
    service: str = typer.Argument(..., help=f"one of: {', '.join(SERVICE_MAIN_MODULES)}"),
) -> None:
    """Run one service in the foreground (extra options: --config FILE, --port N, --host H, KEY=VALUE).

    KEY=VALUE overrides set fields of the --config file (`policy.model` in a run config), or
    of the service's own config without a file."""
    if service not in SERVICE_MAIN_MODULES:
        typer.secho(f"error: unknown service {service!r}; valid: {', '.join(SERVICE_MAIN_MODULES)}", fg="red", err=True)
        raise typer.Exit(2)
    if service not in available_services():
        typer.secho(f"error: the {service} service is not part of this installation", fg="red", err=True)
        raise typer.Exit(2)
    raise typer.Exit(service_main(service)(ctx.args))


def load_run_config(config: Path | None, overrides: list[str] | None = None) -> RunConfig:
    loaded = load_or_exit(config, overrides)
    if not isinstance(loaded, RunConfig):
        typer.secho(f"error: {config}: kind is {loaded.kind!r}; `up` needs a run config", fg="red", err=True)
        raise typer.Exit(1)
    return loaded


def with_auth_flags(cfg: RunConfig, insecure: bool, mtls: bool) -> RunConfig:
    """`--insecure` / `--mtls` as `stack.auth`."""
    if insecure and mtls:
        typer.secho("error: --insecure and --mtls exclude each other", fg="red", err=True)
        raise typer.Exit(2)
    if not (insecure or mtls):
        return cfg
    return cfg.model_copy(update={"stack": cfg.stack.model_copy(update={"auth": "insecure" if insecure else "mtls"})})


def up(
    config: str | None = typer.Argument(None, metavar="[CONFIG]", help="run config (YAML); defaults to the built-in local stack"),
    overrides: list[str] | None = overrides_argument(),
    run_dir: Path | None = typer.Option(None, help="where service configs and logs go (default: <output_dir>/<name>)"),
    insecure: bool = typer.Option(False, "--insecure", help="serve without credentials: any local process may call every method"),
    mtls: bool = typer.Option(False, "--mtls", help="TLS with client certificates on every connection (default: bearer tokens on loopback)"),
) -> None:
    """Start the local stack, wait until every service is SERVING, print addresses; Ctrl-C stops it.

    Secure by default: the stack makes a token per role (client, admin) and a Redis password
    in <run_dir>/stack/auth/; commands on this machine find them there (docs/security.md)."""
    overrides = list(overrides or [])
    if config is not None and is_override(config) and not Path(config).exists():
        # `outrider up KEY=VALUE ...`: overrides of the built-in local stack.
        config, overrides = None, [config, *overrides]
    cfg = with_auth_flags(load_run_config(Path(config) if config is not None else None, overrides), insecure, mtls)
    configure_logging(LogConfig(), "up")
    run_dir = run_dir or Path(cfg.output_dir) / cfg.name
    stack = LocalStack(cfg, run_dir)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    try:
        typer.echo("starting the local stack ...")
        stack.start()
        # Ctrl-C stops the stack even where SIGINT was inherited as ignored (a job started in
        # the background by a non-interactive shell), like SIGTERM.
        signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
        persistence = bus_persistence(stack.redis.url)
        typer.echo(f"redis      {redacted(stack.redis.url)}{' (embedded)' if stack.redis.embedded else ''}  persistence: {persistence.mode}")
        if loud := persistence_warning(persistence, "the bus of this stack"):
            typer.secho(loud, fg="yellow", err=True)
        for name, service in stack.services.items():
            metrics = f"  metrics http://127.0.0.1:{service.metrics_port}/metrics" if service.metrics_port else ""
            http = f"  OpenAI API http://127.0.0.1:{service.http_port}/v1" if service.http_port else ""
            typer.echo(f"{name:<10} {service.address}  SERVING{metrics}{http}")
        if stack.auth_dir is not None:
            typer.echo(f"credentials in {stack.auth_dir} (client.token, admin.token{', certificates' if cfg.stack.auth == 'mtls' else ''}); "
                       f"commands here find them, other programs: OUTRIDER_AUTH_DIR={stack.auth_dir}")
        typer.echo(f"logs in {run_dir / 'stack'}; press Ctrl-C to stop")
        while not stopping:
            stack.check()
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except StackError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    finally:
        typer.echo("stopping ...")
        stack.stop()
        logging.getLogger(__name__).info("stack stopped")
    typer.echo("stopped")

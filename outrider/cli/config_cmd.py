"""`outrider config ...`: validate, show and describe config files."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from outrider.cli.configs import load_or_exit, overrides_argument
from outrider.config import CONFIG_KINDS, ConfigError, dump_yaml, is_override, load_config

app = typer.Typer(help="Validate and inspect config files.", no_args_is_help=True)


@app.command()
def validate(
    files: list[str] = typer.Argument(
        ..., metavar="FILE|KEY=VALUE", help="YAML config files, and KEY=VALUE overrides applied to each"
    ),
) -> None:
    """Check config files; print each problem with its field path. Exit 1 if any is invalid."""
    # One variadic argument holds both: an argument is an override when it reads KEY=VALUE
    # and names no file.
    overrides = [a for a in files if is_override(a) and not Path(a).exists()]
    paths = [Path(a) for a in files if a not in overrides]
    if not paths:
        typer.secho("error: no config file given (only overrides)", fg="red", err=True)
        raise typer.Exit(2)
    failed = 0
    for path in paths:
        try:
            config = load_config(path, overrides)
        except ConfigError as exc:
            failed += 1
            typer.secho(str(exc), fg=typer.colors.RED, err=True)
            continue
        typer.echo(f"ok: {path} (kind: {config.kind})")
    if failed:
        raise typer.Exit(1)


@app.command()
def show(
    file: Path = typer.Argument(..., help="YAML config file"),
    overrides: list[str] | None = overrides_argument(),
) -> None:
    """Print a config with every default filled in (and the overrides applied)."""
    config = load_or_exit(file, overrides)
    typer.echo(dump_yaml(config), nl=False)


@app.command()
def schema(kind: str = typer.Argument("run", help=f"one of: {', '.join(CONFIG_KINDS)}")) -> None:
    """Print the JSON schema of a config kind (fields, bounds, docs)."""
    if kind not in CONFIG_KINDS:
        typer.secho(f"error: unknown kind {kind!r}; valid kinds: {', '.join(CONFIG_KINDS)}", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(CONFIG_KINDS[kind].model_json_schema(), indent=2))

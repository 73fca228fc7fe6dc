"""`outrider config ...`: validate, show and describe config files."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from outrider.config import CONFIG_KINDS, ConfigError, dump_yaml, load_config

app = typer.Typer(help="Validate and inspect config files.", no_args_is_help=True)


@app.command()
def validate(files: list[Path] = typer.Argument(..., help="YAML config files")) -> None:
    """Check config files; print each problem with its field path. Exit 1 if any is invalid."""
    failed = 0
    for path in files:
        try:
            config = load_config(path)
        except ConfigError as exc:
            failed += 1
            typer.secho(str(exc), fg=typer.colors.RED, err=True)
            continue
        typer.echo(f"ok: {path} (kind: {config.kind})")
    if failed:
        raise typer.Exit(1)


@app.command()
def show(file: Path = typer.Argument(..., help="YAML config file")) -> None:
    """Print a config with every default filled in."""
    try:
        config = load_config(file)
    except ConfigError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(dump_yaml(config), nl=False)


@app.command()
def schema(kind: str = typer.Argument("run", help=f"one of: {', '.join(CONFIG_KINDS)}")) -> None:
    """Print the JSON schema of a config kind (fields, bounds, docs)."""
    if kind not in CONFIG_KINDS:
        typer.secho(f"error: unknown kind {kind!r}; valid kinds: {', '.join(CONFIG_KINDS)}", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(CONFIG_KINDS[kind].model_json_schema(), indent=2))

"""What every command that takes a config shares: the `KEY=VALUE` overrides argument,
loading with them (errors printed, exit 1), and the effective config a launched
process reads (outrider.config.overrides)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from outrider.config import ConfigError, ConfigModel, dump_yaml, load_config, parse_config

OVERRIDES_HELP = (
    "KEY=VALUE overrides of the config's fields, e.g. learner.optimizer.lr=3e-6 rollout.group_size=16 "
    "(dotted keys, list items by number, YAML values)"
)


def overrides_argument():
    """The trailing `[KEY=VALUE]...` argument of a command."""
    return typer.Argument(None, metavar="KEY=VALUE", help=OVERRIDES_HELP, show_default=False)


def load_or_exit(config: Path | None, overrides: list[str] | None) -> ConfigModel:
    """The config file with its overrides applied; without a file, the run config's
    defaults with them. A problem is printed with its field path and the command exits 1."""
    try:
        if config is None:
            return parse_config({}, "<defaults>", overrides or ())
        return load_config(config, overrides or ())
    except ConfigError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None


def effective_config(
    config: Path, loaded: ConfigModel, overrides: list[str] | None, name: str, always: bool = False
) -> Path:
    """The file a launched process should read: `config` itself without overrides (unless
    `always`), else the loaded config written to RUN_DIR/`name` (the record of what the run
    was given)."""
    if not overrides and not always:
        return config
    path = loaded.run_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + f".{os.getpid()}.partial")
    given = f" with {' '.join(overrides)}" if overrides else ""
    partial.write_text(f"# {config}{given}\n" + dump_yaml(loaded))
    partial.replace(path)
    return path

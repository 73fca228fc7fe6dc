"""`outrider experiment RECIPE`: the arms of a recipe side by side, with seeds (docs/research.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from outrider.cli.configs import overrides_argument
from outrider.config import ConfigError

SCALES = ("tiny", "cpu", "gpu")


def experiment(
    recipe: str = typer.Argument(..., help="a recipe of examples/experiments/ by name (entropy-collapse, nsr-psr, surrogate-toy) or a YAML path"),
    overrides: list[str] | None = overrides_argument(),
    scale: str = typer.Option("tiny", help="tiny (minutes on 2 CPU cores) | cpu (SmolLM2-135M, ~1 h) | gpu (0.5B–1.5B model)"),
    seeds: int | None = typer.Option(None, min=1, help="seeds per arm (default: the recipe's for the scale)"),
    out: Path | None = typer.Option(None, help="experiment folder (default: runs/experiments/RECIPE-SCALE)"),
    arms: str | None = typer.Option(None, help="comma-separated arms to run (default: all)"),
    jobs: int = typer.Option(1, min=1, help="runs at once (each has its own services)"),
) -> None:
    """Run every arm × seed of a recipe (`outrider train` each; finished runs are skipped), then
    write OUT/experiment.json and OUT/report/index.html. KEY=VALUE overrides apply to every arm."""
    from outrider.experiment.harness import default_out, run_experiment
    from outrider.experiment.recipe import load_recipe
    from outrider.experiment.runner import ExperimentError

    if scale not in SCALES:
        typer.secho(f"error: --scale {scale!r}: one of {', '.join(SCALES)}", fg="red", err=True)
        raise typer.Exit(2)
    try:
        loaded = load_recipe(recipe)
        folder = out or default_out(loaded, scale)
        chosen = [a.strip() for a in arms.split(",") if a.strip()] if arms else None
        index = run_experiment(loaded, scale, seeds, folder, overrides or (), chosen, jobs, typer.echo)  # type: ignore[arg-type]
    except (ConfigError, ExperimentError, ValueError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"report: {index}")

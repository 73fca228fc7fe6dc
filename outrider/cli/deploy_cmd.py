"""`outrider deploy render|check`: one run config for local and cluster runs (docs/deploy.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from outrider.cli.configs import overrides_argument
from outrider.config import ConfigError

app = typer.Typer(help="Helm values of a run config (render) and what a values file deploys (check).", no_args_is_help=True)

CHART_HELP = "the chart folder (default: helm/outrider of this checkout)"


def _chart(chart: Path | None) -> Path:
    from outrider.cli.deploy_values import CHART_DIR

    return chart or CHART_DIR


@app.command()
def render(
    config: Path = typer.Argument(..., help="a run config (the one `outrider train` takes)"),
    overrides: list[str] | None = overrides_argument(),
    values_files: list[Path] | None = typer.Option(None, "-f", "--values", help="chart values merged over the rendered ones, in order (replicas, images, resources, ...)"),
    out: Path | None = typer.Option(None, "--out", "-o", help="write the values here (default: print them)"),
    chart: Path | None = typer.Option(None, help=CHART_HELP),
) -> None:
    """Write the Helm values that run CONFIG in a cluster: the config under `config:` (less
    what the chart sets there: addresses, ports, Redis URL, credentials), the -f files over
    it; checked as `deploy check` checks them."""
    from outrider.cli.deploy_values import dump_values, render_values

    try:
        rendered = render_values(config, values_files or [], overrides or [], _chart(chart))
    except ConfigError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    text = dump_values(rendered, config)
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text)
    typer.echo(f"wrote {out}: helm install NAME {_chart(chart)} -f {out}", err=True)
    for line in text.splitlines()[1:]:
        if line.startswith("# "):
            typer.echo(line[2:], err=True)


@app.command()
def check(
    values: Path = typer.Argument(..., help="a values file for helm/outrider"),
    chart: Path | None = typer.Option(None, help=CHART_HELP),
) -> None:
    """Validate VALUES (over the chart's defaults) with the chart's schema and the run config
    models, and print the workloads it would deploy: replicas, images, resources."""
    from outrider.cli.deploy_values import _read_mapping, check_values, describe

    try:
        found = check_values(_read_mapping(values, "a values file"), str(values), _chart(chart))
    except ConfigError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{values}: valid")
    typer.echo(describe(found))

"""`outrider train`, `outrider worker`, `outrider report`, `outrider demo`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer

from outrider.cli.configs import effective_config, load_or_exit, overrides_argument
from outrider.config import ConfigError, LogConfig, RunConfig
from outrider.serving.logs import configure_logging

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO_ROOT / "examples" / "demo.yaml"


def _load_run(config: Path, overrides: list[str] | None = None) -> RunConfig:
    from outrider.train.preflight import preflight

    run = load_or_exit(config, overrides)
    try:
        if not isinstance(run, RunConfig):
            raise ConfigError(str(config), [("kind", f"is {run.kind!r}; training needs a run config")])
        preflight(run, str(config))
    except ConfigError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    return run


def _print_summary(summary: dict) -> None:
    ledger = summary["ledger"]
    typer.echo(
        f"\nledger: {ledger['produced']} groups produced, {ledger['trained']} trained "
        f"({ledger['trained_twice']} twice), {ledger['dead_lettered']} dead-lettered, "
        f"{ledger['queued']} left queued, {ledger['lost']} lost"
        + (f"; {ledger['discarded']} without signal not sent" if ledger.get("discarded") else "")
    )
    for label in ("before", "after"):
        result = summary.get(label)
        if result:
            typer.echo(
                f"held-out {label:<6} pass@1 {result['pass_at_k']['1']:.3f}   "
                f"first-try pass@1 {result['first_try_pass_at_k']['1']:.3f}   "
                f"pass@{result['samples']} {result['pass_at_k'][str(result['samples'])]:.3f}"
            )


def train(
    config: Path = typer.Argument(..., help="run config (YAML)"),
    overrides: list[str] | None = overrides_argument(),
    resume: bool = typer.Option(False, help="continue the run from its last checkpoint"),
    restarts: int = typer.Option(3, help="restarts allowed per rollout worker, for the learner, and per service (and an embedded Redis)"),
    report: bool = typer.Option(True, help="render the HTML report at the end"),
    overwrite: bool = typer.Option(False, help="delete an earlier run in the same run folder and start over"),
    insecure: bool = typer.Option(False, "--insecure", help="run the services without credentials (any local process may call them)"),
    mtls: bool = typer.Option(False, "--mtls", help="TLS with client certificates between the run's processes"),
) -> None:
    """Train an agent: services, rollout workers and learner, with live progress.

    RUN_DIR/run.yaml records the effective config (overrides included). The services
    authenticate every call with credentials the run makes for itself (docs/security.md)."""
    from outrider.cli.stack_cmd import with_auth_flags

    run = with_auth_flags(_load_run(config, overrides), insecure, mtls)
    configure_logging(LogConfig(level="warning"), "train")
    from outrider.stack import StackError
    from outrider.train.runner import TrainError, TrainRun

    try:
        summary = TrainRun(run, resume=resume, restarts=restarts, overwrite=overwrite).execute()
    except (StackError, TrainError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    _print_summary(summary)
    failed = False
    if run.evaluation.boundary.enabled:
        failed = not _boundary(run)
    if report:
        from outrider.train.report import render_report

        typer.echo(f"report: {render_report(Path(summary['run_dir']))}")
    if failed:
        raise typer.Exit(1)


def _boundary(run: RunConfig) -> bool:
    """evaluation.boundary.enabled: `outrider eval` of the base model vs the final weights."""
    from outrider.eval.runner import EvalError, boundary_after_training

    typer.echo("\nreasoning boundary: the base model against the final weights (outrider eval) ...")
    try:
        outcome = boundary_after_training(run)
    except EvalError as exc:
        typer.secho(f"error: the boundary evaluation failed: {exc}", fg="red", err=True)
        return False
    typer.echo(outcome.summary)
    typer.echo(f"boundary report: {outcome.index}")
    return True


def worker(
    config: Path = typer.Argument(..., help="run config (YAML) with the services' addresses"),
    overrides: list[str] | None = overrides_argument(),
    concurrency: int = typer.Option(1, help="rollout processes in this worker"),
) -> None:
    """Run a Celery rollout worker (cluster mode; `outrider train` starts its own locally)."""
    run = _load_run(config, overrides)
    if not run.redis.url or not run.stack.addresses:
        typer.secho(f"error: {config}: a worker needs redis.url and stack.addresses", fg="red", err=True)
        raise typer.Exit(1)
    from outrider.rollout.worker import QUEUE

    # Its processes and threads load the config again, from a file: with overrides, one
    # per worker (workers on one machine may be given different ones).
    os.environ["OUTRIDER_RUN_CONFIG"] = str(effective_config(config, run, overrides, f"worker-{os.getpid()}.yaml"))
    command = [sys.executable, "-m", "celery", "-A", "outrider.rollout.worker", "worker",
               "--pool=prefork", f"--concurrency={concurrency}", f"--queues={QUEUE}", "--loglevel=INFO"]
    os.execv(sys.executable, command)


def report(run_dir: Path = typer.Argument(..., help="a run folder (with metrics.jsonl)")) -> None:
    """Render a run's curves (PNG) and summary into RUN_DIR/report/index.html."""
    from outrider.train.report import render_report

    try:
        index = render_report(run_dir)
    except FileNotFoundError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(str(index))


def demo(
    config: Path = typer.Option(DEMO_CONFIG, help="the demo's run config"),
    overrides: list[str] | None = overrides_argument(),
    resume: bool = typer.Option(False, help="continue an interrupted demo"),
) -> None:
    """The main job: train SmolLM2-135M-Instruct on multi-turn math, then report."""
    typer.echo(f"Outrider demo: {config}")
    # The demo is meant to be run again and again: a new run replaces the last one.
    train(config, overrides, resume=resume, restarts=3, report=True, overwrite=not resume, insecure=False, mtls=False)

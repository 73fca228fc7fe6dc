"""`outrider eval`: compare checkpoints at large k on held-out tasks (the reasoning-boundary report)."""

from __future__ import annotations

from pathlib import Path

import typer

from outrider.cli.configs import overrides_argument
from outrider.config import LogConfig
from outrider.serving.logs import configure_logging


def eval_command(
    config: Path = typer.Argument(..., help="run config (YAML): environments, sampling, policy backend"),
    overrides: list[str] | None = overrides_argument(),
    checkpoint: list[str] = typer.Option(
        ..., "--checkpoint", "-c",
        help="NAME=SOURCE, repeatable: a built-in model, an HF folder, a run folder or RUN_DIR/checkpoints/step-N",
    ),
    base: str | None = typer.Option(None, help="the checkpoint the others are compared with (default: the first)"),
    n: int | None = typer.Option(None, "--n", help="samples per task (default: evaluation.boundary.samples, else 256 on a GPU, 16 on a CPU)"),
    k: list[int] = typer.Option([], "--k", help="also print pass@k at this k (repeatable; k <= n)"),
    tasks: int | None = typer.Option(None, help="held-out tasks per environment (default: evaluation.boundary.tasks, else evaluation.tasks)"),
    out: Path | None = typer.Option(None, help="evaluation folder (default: RUN_DIR/eval of the first run checkpoint, else OUTPUT_DIR/eval-NAME)"),
    seed: int | None = typer.Option(None, help="seed of sessions, subsamples and the bootstrap (default: the run's seed)"),
    resume: bool = typer.Option(False, help="continue an interrupted evaluation in the same folder (nothing stored is sampled again)"),
    overwrite: bool = typer.Option(False, help="delete an earlier evaluation in the same folder and start over"),
    search: str | None = typer.Option(
        None, help="none|beam|mcts: each sample is the best answer of one PRM-guided search with rollout.search's "
        "settings (default: evaluation.boundary.search)",
    ),
) -> None:
    """Sample checkpoints n times per held-out task; report pass@k with intervals, crossover k,
    solvable sets, perplexity under the base, and token entropies (EVAL_DIR/index.html)."""
    from outrider.cli.train_cmd import _load_run
    from outrider.eval.checkpoints import CheckpointError, parse_checkpoint_args
    from outrider.eval.runner import EvalError, EvalRun, EvalSettings

    run = _load_run(config, overrides)
    configure_logging(LogConfig(level="warning"), "eval")
    try:
        settings = EvalSettings(
            checkpoints=parse_checkpoint_args(checkpoint), base=base, n=n, tasks=tasks, out=out, seed=seed,
            ks=list(k), resume=resume, overwrite=overwrite, search=search,
        )
        outcome = EvalRun(run, settings).execute()
    except (CheckpointError, EvalError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo("\n" + outcome.summary)
    typer.echo(f"report: {outcome.index}")

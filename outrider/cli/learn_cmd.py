"""`outrider learn CONFIG`: launch the DeepSpeed learner with torchrun."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import typer

from outrider.cli.configs import effective_config, load_or_exit, overrides_argument
from outrider.config import RunConfig
from outrider.train.torchrun import torchrun_command


def learn(
    config: Path = typer.Argument(..., help="run config (YAML) with the learner section"),
    overrides: list[str] | None = overrides_argument(),
    resume: bool = typer.Option(False, help="continue from the run's last checkpoint"),
    nproc_per_node: int | None = typer.Option(None, "--nproc-per-node", help="ranks on this node (default: learner.ranks)"),
    nnodes: int = typer.Option(1, help="nodes taking part (multi-node needs --rdzv-endpoint)"),
    rdzv_endpoint: str | None = typer.Option(None, help="host:port of the rendezvous (node 0)"),
    max_steps: int | None = typer.Option(None, help="override learner.max_steps"),
) -> None:
    """Train from the trajectory bus with DeepSpeed (gloo on CPU, NCCL on GPU).

    With overrides, the ranks read the effective config from RUN_DIR/learn.yaml."""
    cfg = load_or_exit(config, overrides)
    if not isinstance(cfg, RunConfig):
        typer.secho(f"error: {config}: kind is {cfg.kind!r}; `learn` needs a run config", fg="red", err=True)
        raise typer.Exit(1)
    if not cfg.redis.url:
        typer.secho(f"error: {config}: redis.url: the learner needs the Redis its rollout workers write to", fg="red", err=True)
        raise typer.Exit(1)
    try:
        path = effective_config(config, cfg, overrides, "learn.yaml")
        command = torchrun_command(path, nproc_per_node or cfg.learner.ranks, nnodes, rdzv_endpoint, resume, max_steps)
    except ValueError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    raise typer.Exit(subprocess.call(command, env=env))

"""`outrider sft CONFIG` and `outrider dpo CONFIG`: offline training on the DeepSpeed learner."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import typer

from outrider.cli.configs import effective_config, load_or_exit, overrides_argument
from outrider.train.torchrun import torchrun_command

OFFLINE_MAIN = "outrider.learner.offline.main"
# What an earlier run leaves in the run folder; a new run's metrics would mix with its own.
RUN_MARKERS = ("metrics.jsonl", "checkpoints", "final")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(1)


def _launch(
    config: Path, overrides: list[str] | None, kind: str, nproc_per_node: int | None, max_steps: int | None, overwrite: bool
) -> None:
    cfg = load_or_exit(config, overrides)
    if cfg.kind != kind:
        _fail(f"{config}: kind is {cfg.kind!r}; `outrider {kind}` needs kind: {kind}")
    if not cfg.data.path:
        _fail(f"{config}: data.path: no dataset given")
    if not Path(cfg.data.path).exists():
        _fail(f"{config}: data.path: {cfg.data.path} does not exist")
    earlier = [name for name in RUN_MARKERS if (cfg.run_dir / name).exists()]
    if earlier and not overwrite:
        _fail(f"{cfg.run_dir} holds an earlier run ({', '.join(earlier)}); --overwrite deletes it and starts over")
    if earlier:
        shutil.rmtree(cfg.run_dir)
    # The ranks read the effective config (overrides included) from RUN_DIR/run.yaml, which
    # stays as the run's record, as `outrider train`'s does: `outrider export` and
    # `outrider eval` find the run's initial model there.
    path = effective_config(config, cfg, overrides, "run.yaml", always=True)
    command = torchrun_command(path, nproc_per_node or cfg.ranks, max_steps=max_steps, module=OFFLINE_MAIN)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    raise typer.Exit(subprocess.call(command, env=env))


def sft(
    config: Path = typer.Argument(..., help="sft config (YAML, kind: sft)"),
    overrides: list[str] | None = overrides_argument(),
    nproc_per_node: int | None = typer.Option(None, "--nproc-per-node", help="ranks (default: ranks in the config)"),
    max_steps: int | None = typer.Option(None, help="override max_steps"),
    overwrite: bool = typer.Option(False, help="delete an earlier run in the same run folder and start over"),
) -> None:
    """Supervised fine-tuning (chat JSONL, or solved trajectories: rejection-sampling FT)."""
    _launch(config, overrides, "sft", nproc_per_node, max_steps, overwrite)


def dpo(
    config: Path = typer.Argument(..., help="dpo config (YAML, kind: dpo)"),
    overrides: list[str] | None = overrides_argument(),
    nproc_per_node: int | None = typer.Option(None, "--nproc-per-node", help="ranks (default: ranks in the config)"),
    max_steps: int | None = typer.Option(None, help="override max_steps"),
    overwrite: bool = typer.Option(False, help="delete an earlier run in the same run folder and start over"),
) -> None:
    """Preference optimization (DPO, IPO) on pairs: JSONL, or a group's best vs worst episode."""
    _launch(config, overrides, "dpo", nproc_per_node, max_steps, overwrite)

"""`outrider export CHECKPOINT --hf DIR`: a step checkpoint as a transformers/vLLM model folder."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer

CHECKPOINT_HELP = (
    "RUN_DIR/checkpoints/step-N, RUN_DIR/checkpoints/actor/step-NNNNNNN, a run's checkpoints/ folder "
    "or a run folder (both: the newest checkpoint)"
)


def _fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(1)


def export(
    checkpoint: str = typer.Argument(..., metavar="CHECKPOINT", help=CHECKPOINT_HELP),
    hf: Path = typer.Option(..., "--hf", help="folder to write: weights (safetensors), config, tokenizer"),
    overwrite: bool = typer.Option(False, help="replace an HF model folder already at --hf"),
) -> None:
    """Turn a DeepSpeed step checkpoint into an HF folder that transformers and vLLM load.

    The architecture and tokenizer are the run's initial model (learner.model in
    RUN_DIR/run.yaml), as for `outrider eval --checkpoint`.
    """
    from outrider.eval.checkpoints import CheckpointError, resolve_checkpoint

    where = f"export {checkpoint}"
    source = Path(checkpoint).expanduser()
    if (source / "checkpoints").is_dir():
        # A run folder: its newest step (`outrider eval` would take the run's final/ export).
        source = source / "checkpoints"
    try:
        resolved = resolve_checkpoint("export", str(source), where=where)
    except CheckpointError as exc:
        _fail(str(exc))
    if not resolved.needs_export:
        _fail(f"{where}: {resolved.folder} is already an HF model folder; give a step checkpoint (RUN_DIR/checkpoints/step-N)")
    out = hf.expanduser()
    if out.exists() and any(out.iterdir()):
        if not (out / "config.json").is_file():
            _fail(f"--hf {hf}: the folder holds files and is no HF model folder; give an empty or new folder")
        if not overwrite:
            _fail(f"--hf {hf}: an HF model folder is already there; --overwrite replaces it")
    typer.echo(f"exporting {resolved.describe()} ...")
    from outrider.learner.checkpoint import export_hf_from_checkpoint

    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        export_hf_from_checkpoint(resolved.checkpoints_root, resolved.tag, out, resolved.model_from)
    except ValueError as exc:
        _fail(f"{where}: {exc}")
    typer.echo(str(out))

"""The torchrun command line that starts the learner's ranks.

Used by `outrider learn` and `outrider sft`/`dpo` (the CLI) and by `outrider train`'s
supervisor (`processes.py`), so it lives here, below the CLI: orchestration never
imports the CLI (docs/architecture.md, Layers).
"""

from __future__ import annotations

import sys
from pathlib import Path


def torchrun_command(
    config: Path,
    nproc_per_node: int,
    nnodes: int = 1,
    rdzv_endpoint: str | None = None,
    resume: bool = False,
    max_steps: int | None = None,
    module: str = "outrider.learner.main",
) -> list[str]:
    """torchrun running `module CONFIG [--resume] [--max-steps N]` on every rank."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc_per_node}"]
    if nnodes > 1:
        if not rdzv_endpoint:
            raise ValueError("--rdzv-endpoint is required with --nnodes > 1")
        command += [f"--nnodes={nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}"]
    else:
        # A private rendezvous on a free port: several learners may share a machine.
        command += ["--standalone"]
    command += ["-m", module, str(config)]
    if resume:
        command.append("--resume")
    if max_steps is not None:
        command += ["--max-steps", str(max_steps)]
    return command

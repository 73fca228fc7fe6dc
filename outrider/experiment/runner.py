"""Running an experiment's arms: each arm × seed is one `outrider train` process.

A run is finished when its folder holds summary.json (`outrider train` writes it last,
after the final evaluation); a finished run is skipped, so an interrupted experiment
continues where it stopped. A run folder without it is an interrupted run and starts
over (`--overwrite`): the seeds then mean the same thing in every arm, which resuming
from a mid-run checkpoint would not guarantee. A finished run is reused only when the
config it recorded (OUT/ARM/seed-S.yaml) is the one this invocation would give it.

Each run is a subprocess (the CLI, as a user would start it) with its output in
OUT/ARM/seed-S.log: its services, Redis and learner are its own, and nothing one run
leaves behind in this process affects the next. `jobs` > 1 runs that many at once
(each stack on its own free ports).

The base model's evaluation is shared within a seed. Every arm of a seed starts from the
same model and evaluates it on the same held-out tasks with the same sampling, so once
one arm's run has evaluated it (RUN_DIR/eval_before.json), the harness gives that file to
the seed's other runs, and `outrider train` uses it instead of sampling again (an arm
that changes anything the evaluation depends on, e.g. rollout.sampling, evaluates
its own). At the cpu scale this saves one evaluation of 16 × 64 episodes (~5 min) per arm.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from outrider.config import dump_yaml, load_config
from outrider.experiment.recipe import ArmRun


class ExperimentError(RuntimeError):
    """An arm's run failed (the message names the arm, the seed and its log)."""


@dataclass(frozen=True)
class Outcome:
    arm: str
    seed: int
    skipped: bool
    """Finished before this invocation (summary.json present): not rerun."""
    seconds: float
    returncode: int


def finished(run: ArmRun) -> bool:
    return (run.run_dir / "summary.json").exists()


def train_command(config_path: Path) -> list[str]:
    return [sys.executable, "-m", "outrider.cli.main", "train", str(config_path), "--no-report", "--overwrite"]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


BASE_EVAL = "eval_before.json"
"""The run's evaluation before training (outrider.train.runner), reused when present."""

# Config sections the evaluation before training depends on; the learner's (the
# algorithm an arm changes) and the harness's name/output_dir are not among them.
BASE_EVAL_SECTIONS = ("seed", "policy", "env", "reward", "rollout", "evaluation")


def base_eval_key(run: ArmRun) -> str:
    """Runs with equal keys evaluate the same base model in the same way."""
    dumped = run.config.model_dump(mode="json")
    return json.dumps({section: dumped.get(section) for section in BASE_EVAL_SECTIONS}, sort_keys=True)


def shared_base_eval(run: ArmRun, runs: Sequence[ArmRun]) -> Path | None:
    """A finished run's evaluation before training that `run` may use as its own."""
    key = base_eval_key(run)
    for other in runs:
        source = other.run_dir / BASE_EVAL
        if other is not run and finished(other) and source.exists() and base_eval_key(other) == key:
            return source
    return None


def run_one(run: ArmRun, echo: Callable[[str], None], runs: Sequence[ArmRun] = ()) -> Outcome:
    if finished(run):
        echo(f"  {run.arm} seed {run.seed}: finished earlier ({run.run_dir / 'summary.json'}), skipped")
        return Outcome(run.arm, run.seed, True, 0.0, 0)
    run.config_path.parent.mkdir(parents=True, exist_ok=True)
    run.config_path.write_text(_header(run) + dump_yaml(run.config))
    source = shared_base_eval(run, runs)
    if source is not None:
        # An interrupted run's folder holds training outputs, which `--overwrite` removes
        # with the whole folder: clear it first so the copy survives the start.
        if run.run_dir.exists():
            shutil.rmtree(run.run_dir)
        run.run_dir.mkdir(parents=True)
        shutil.copyfile(source, run.run_dir / BASE_EVAL)
        echo(f"  {run.arm} seed {run.seed}: the base model's evaluation is {source}'s")
    log = run.config_path.with_suffix(".log")
    echo(f"  {run.arm} seed {run.seed}: outrider train {run.config_path} (log {log}) ...")
    started = time.monotonic()
    with log.open("w") as out:
        code = subprocess.call(train_command(run.config_path), stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    seconds = time.monotonic() - started
    if code == 0 and not finished(run):
        code = -1  # exited 0 without its summary: not a finished run
    echo(f"  {run.arm} seed {run.seed}: {'done' if code == 0 else f'FAILED (exit {code})'} in {seconds:.0f} s")
    return Outcome(run.arm, run.seed, False, seconds, code)


def _header(run: ArmRun) -> str:
    given = f" with {' '.join(run.overrides)}" if run.overrides else " (the base config)"
    return f"# experiment arm {run.arm!r}, seed {run.seed}{given}\n"


def check_finished(runs: Sequence[ArmRun]) -> None:
    """A finished run is reused only if it was made with the config this invocation would
    give it: a changed recipe or override must not mix old results into the new experiment."""
    for run in runs:
        if not finished(run):
            continue
        # Compared as validated configs, not as text: a field added to the config models
        # since (with its default) is no difference.
        recorded = load_config(run.config_path) if run.config_path.exists() else None
        if recorded is None or recorded.model_dump(mode="json") != run.config.model_dump(mode="json"):
            raise ExperimentError(
                f"{run.run_dir} is a finished run of arm {run.arm!r} seed {run.seed}, but "
                f"{run.config_path} {'is missing' if recorded is None else 'records another config'} than this "
                "invocation gives it (recipe, scale or overrides changed): use another --out, or delete the run"
            )


def run_all(runs: Sequence[ArmRun], jobs: int = 1, echo: Callable[[str], None] = print) -> list[Outcome]:
    """Run every unfinished arm × seed (`jobs` at a time); ExperimentError after all have been
    tried when any failed, naming each with its log's last lines."""
    if jobs < 1:
        raise ValueError(f"jobs={jobs}: at least 1")
    check_finished(runs)
    with ThreadPoolExecutor(jobs) as pool:
        outcomes = list(pool.map(lambda r: run_one(r, echo, runs), runs))
    failed = [(r, o) for r, o in zip(runs, outcomes) if o.returncode != 0]
    if failed:
        parts = [f"arm {r.arm!r} seed {r.seed} exited {o.returncode}; {r.config_path.with_suffix('.log')} ends:\n"
                 f"{_tail(r.config_path.with_suffix('.log'))}" for r, o in failed]
        raise ExperimentError(f"{len(failed)} of {len(runs)} runs failed (finished ones are kept; run again to retry):\n" + "\n\n".join(parts))
    return outcomes

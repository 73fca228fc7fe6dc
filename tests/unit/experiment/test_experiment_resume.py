"""Resumption without training: finished runs (summary.json present, the same recorded
config) are skipped without starting a process; a finished run made with another config
is an error. (tests/e2e/test_experiment_e2e.py resumes real runs.)"""

from __future__ import annotations

import pytest

from outrider.config import dump_yaml
from outrider.experiment.recipe import expand, load_recipe
from outrider.experiment.runner import ExperimentError, run_all


def _finish(run) -> None:
    run.run_dir.mkdir(parents=True)
    (run.run_dir / "summary.json").write_text("{}")
    given = f" with {' '.join(run.overrides)}" if run.overrides else " (the base config)"
    run.config_path.write_text(f"# experiment arm {run.arm!r}, seed {run.seed}{given}\n" + dump_yaml(run.config))


def test_finished_runs_are_skipped_and_nothing_is_started(tmp_path):
    runs = expand(load_recipe("nsr-psr"), "tiny", 2, tmp_path)
    for run in runs:
        _finish(run)
    lines: list[str] = []
    outcomes = run_all(runs, echo=lines.append)
    assert all(o.skipped and o.returncode == 0 for o in outcomes) and len(outcomes) == 8
    assert all("finished earlier" in line and "skipped" in line for line in lines)
    assert not any(p.suffix == ".log" for p in tmp_path.rglob("*"))  # no `outrider train` was started


def test_a_finished_run_with_another_config_is_an_error(tmp_path):
    loaded = load_recipe("nsr-psr")
    (old,) = expand(loaded, "tiny", 1, tmp_path, overrides=["learner.max_steps=3"], arms=["psr"])
    _finish(old)
    (new,) = expand(loaded, "tiny", 1, tmp_path, arms=["psr"])
    with pytest.raises(ExperimentError, match="records another config"):
        run_all([new], echo=lambda _: None)

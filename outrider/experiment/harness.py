"""One experiment, start to end: expand the recipe, run what is unfinished, collect, report."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from pathlib import Path

from outrider.experiment import report, results, runner, surrogate
from outrider.experiment.recipe import LoadedRecipe, ScaleName, SurrogateRecipe, TrainRecipe, expand


def command_line(loaded: LoadedRecipe, scale: str, seeds: int | None, out: Path, arms: Sequence[str] | None, overrides: Sequence[str]) -> str:
    """The command that reproduces this experiment (recorded in its JSON and report)."""
    parts = ["outrider", "experiment", loaded.recipe.name]
    if isinstance(loaded.recipe, TrainRecipe):
        parts += ["--scale", scale]
        if seeds is not None:
            parts += ["--seeds", str(seeds)]
        if arms:
            parts += ["--arms", ",".join(arms)]
    parts += ["--out", str(out), *overrides]
    return shlex.join(parts)


def default_out(loaded: LoadedRecipe, scale: str) -> Path:
    suffix = f"-{scale}" if isinstance(loaded.recipe, TrainRecipe) else ""
    return Path("runs") / "experiments" / f"{loaded.recipe.name}{suffix}"


def run_experiment(
    loaded: LoadedRecipe,
    scale: ScaleName,
    seeds: int | None,
    out: Path,
    overrides: Sequence[str] = (),
    arms: Sequence[str] | None = None,
    jobs: int = 1,
    echo: Callable[[str], None] = print,
) -> Path:
    """Run the experiment into `out`; returns its report's index.html. experiment.json
    (train recipes) or surrogate.json holds every number the report shows."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    command = command_line(loaded, scale, seeds, out, arms, overrides)
    recipe = loaded.recipe
    if isinstance(recipe, SurrogateRecipe):
        if overrides or arms:
            raise ValueError("surrogate recipes take no KEY=VALUE overrides or --arms: edit the recipe's `surrogate` section")
        data = {"recipe": recipe.name, "question": recipe.question, "finding": recipe.finding, "command": command,
                **surrogate.run(recipe.surrogate)}
        report.write_json(data, out / "surrogate.json")
        return report.render_surrogate(data, out)
    runs = expand(loaded, scale, seeds, out, overrides, list(arms) if arms else None)
    echo(f"experiment {recipe.name} (scale {scale}): {len(runs)} runs "
         f"({len({r.arm for r in runs})} arms x {len({r.seed for r in runs})} seeds) in {out}")
    runner.run_all(runs, jobs=jobs, echo=echo)
    data = results.collect(recipe, scale, runs, command)
    report.write_json(data, out / "experiment.json")
    return report.render_experiment(data, out)

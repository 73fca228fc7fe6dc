"""The base model's evaluation is shared within a seed: a finished run's eval_before.json is
offered to another arm of the same seed when nothing the evaluation depends on differs,
and never across seeds or to an arm that samples differently; the experiment's pooled base
pass@k counts a shared evaluation once. (tests/e2e/test_experiment_e2e.py shares one
between two real runs.)"""

from __future__ import annotations

import json

import yaml

from outrider.experiment.recipe import RECIPES_DIR, expand, load_recipe
from outrider.experiment.results import distinct
from outrider.experiment.runner import BASE_EVAL, shared_base_eval


def _finish(run, before: dict) -> None:
    run.run_dir.mkdir(parents=True)
    (run.run_dir / "summary.json").write_text("{}")
    (run.run_dir / BASE_EVAL).write_text(json.dumps(before))


def _recipe(tmp_path):
    recipe = {
        "name": "sharing",
        "question": "does the harness share the base evaluation?",
        "metrics": [{"key": "entropy"}],
        "scales": {"tiny": {"config": str(RECIPES_DIR / "configs" / "tiny-vowels.yaml"), "seeds": 2}},
        "arms": {
            "grpo": {},
            "nsr": {"learner.algorithm.transforms": [{"name": "nsr_only", "params": {"positive_weight": 0.0, "negative_weight": 1.0}}]},
            "hot": {"rollout.sampling.temperature": 1.5},
        },
    }
    path = tmp_path / "sharing.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return load_recipe(str(path))


def test_a_seeds_finished_base_evaluation_is_offered_to_its_other_arms_only(tmp_path):
    runs = expand(_recipe(tmp_path), "tiny", None, tmp_path / "out")
    by = {(r.arm, r.seed): r for r in runs}
    assert len(runs) == 6
    assert shared_base_eval(by["nsr", 0], runs) is None  # nothing finished yet

    _finish(by["grpo", 0], {"pass_at_k": {"1": 0.25}})
    assert shared_base_eval(by["nsr", 0], runs) == by["grpo", 0].run_dir / BASE_EVAL
    assert shared_base_eval(by["nsr", 1], runs) is None  # another seed: its own evaluation
    assert shared_base_eval(by["hot", 0], runs) is None  # samples at another temperature
    assert shared_base_eval(by["grpo", 0], runs) is None  # not its own source


def test_an_unfinished_runs_evaluation_is_not_shared(tmp_path):
    runs = expand(_recipe(tmp_path), "tiny", None, tmp_path / "out")
    by = {(r.arm, r.seed): r for r in runs}
    interrupted = by["grpo", 0]
    interrupted.run_dir.mkdir(parents=True)
    (interrupted.run_dir / BASE_EVAL).write_text("{}")  # no summary.json: it may be half a run
    assert shared_base_eval(by["nsr", 0], runs) is None


def test_the_pooled_base_counts_a_shared_evaluation_once():
    seed0 = {"pass_at_k": {"1": 0.25}, "finished_at": 1.0}
    seed1 = {"pass_at_k": {"1": 0.5}, "finished_at": 2.0}
    # Three arms of seed 0 report the same (shared) evaluation; seed 1 has its own.
    assert distinct([seed0, dict(seed0), seed1, json.loads(json.dumps(seed0))]) == [seed0, seed1]

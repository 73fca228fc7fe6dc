"""Recipe expansion: every shipped arm differs from the base only in the keys it names
(the expanded configs are diffed), and a bad key or algorithm name is an error naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from outrider.config import ConfigError
from outrider.config.overrides import parse_override
from outrider.experiment.recipe import RECIPES_DIR, TrainRecipe, expand, load_recipe

TRAIN_RECIPES = ["entropy-collapse", "nsr-psr", "boundary"]


def _flatten(value, prefix: tuple = ()) -> dict[tuple, object]:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out |= _flatten(item, (*prefix, key))
        return out or {prefix: {}}
    if isinstance(value, list):
        out = {}
        for index, item in enumerate(value):
            out |= _flatten(item, (*prefix, index))
        return out or {prefix: []}
    return {prefix: value}


def _diff(a: dict, b: dict) -> set[tuple]:
    fa, fb = _flatten(a), _flatten(b)
    return {key for key in fa.keys() | fb.keys() if fa.get(key, "<absent>") != fb.get(key, "<absent>")}


def test_the_shipped_recipes_are_the_expected_ones():
    assert sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")) == ["boundary", "entropy-collapse", "nsr-psr", "surrogate-toy"]


def test_entropy_collapse_and_nsr_psr_have_the_arms_the_issue_names():
    arms = {name: list(load_recipe(name).recipe.arms) for name in TRAIN_RECIPES}
    assert arms == {
        "entropy-collapse": ["grpo", "clip-higher", "clip-cov", "kl-cov", "entropy-advantage", "forking-tokens"],
        "nsr-psr": ["psr", "nsr", "w-reinforce", "grpo"],
        "boundary": ["grpo"],
    }


@pytest.mark.parametrize("scale", ["tiny", "cpu", "gpu"])
def test_the_boundary_recipe_evaluates_base_against_final_at_large_k(scale, tmp_path):
    (run,) = expand(load_recipe("boundary"), scale, seeds=1, out=tmp_path)
    boundary = run.config.evaluation.boundary
    assert boundary.enabled and boundary.samples == {"tiny": 32, "cpu": 64, "gpu": 256}[scale]


@pytest.mark.parametrize("name", TRAIN_RECIPES)
@pytest.mark.parametrize("scale", ["tiny", "cpu", "gpu"])
def test_every_arm_differs_from_the_base_only_in_its_named_keys(name, scale, tmp_path):
    loaded = load_recipe(name)
    recipe = loaded.recipe
    assert isinstance(recipe, TrainRecipe)
    runs = expand(loaded, scale, seeds=2, out=tmp_path)
    assert len(runs) == 2 * len(recipe.arms)
    base_arm = next(arm for arm, keys in recipe.arms.items() if not keys)  # the base config itself
    by = {(r.arm, r.seed): r.config.model_dump(mode="json") for r in runs}
    for seed in (0, 1):
        base = by[(base_arm, seed)]
        assert base["seed"] == seed and base["name"] == f"seed-{seed}"
        for arm, keys in recipe.arms.items():
            config = by[(arm, seed)]
            assert config["output_dir"] == str(tmp_path / arm)
            differing = _diff(base, config) - {("output_dir",)}
            named = [parse_override(f"{key}=x").path for key in keys]
            stray = {d for d in differing if not any(d[: len(n)] == tuple(n) for n in named)}
            assert not stray, f"{arm} differs from {base_arm} outside its keys: {sorted(stray)}"
            for key, path in zip(keys, named):
                assert any(d[: len(path)] == tuple(path) for d in differing), f"{arm}: {key} changes nothing"
    # Seeds differ in `seed` and `name` only.
    assert _diff(by[(base_arm, 0)], by[(base_arm, 1)]) == {("seed",), ("name",)}


def test_arm_values_arrive_as_written():
    runs = {r.arm: r.config.learner.algorithm for r in expand(load_recipe("entropy-collapse"), "tiny", 1, Path("/x"))}
    assert runs["clip-higher"].policy_loss.name == "clip_higher" and runs["clip-higher"].policy_loss.params["clip_eps_high"] == 0.28
    assert [t.name for t in runs["forking-tokens"].transforms] == ["forking_tokens"]
    assert runs["grpo"].policy_loss.name == "ppo_clip" and runs["grpo"].transforms == []


def _recipe(tmp_path: Path, arms: dict) -> Path:
    data = yaml.safe_load((RECIPES_DIR / "nsr-psr.yaml").read_text())
    data["arms"] = arms
    for scale in data["scales"].values():
        scale["config"] = str(RECIPES_DIR / scale["config"])
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def test_an_unknown_key_is_an_error_naming_it_and_the_arm(tmp_path):
    path = _recipe(tmp_path, {"base": {}, "typo": {"learner.algorithm.policy_los.name": "clip_cov"}})
    with pytest.raises(ConfigError) as error:
        load_recipe(path)
    text = str(error.value)
    assert "learner.algorithm.policy_los" in text and "arm 'typo'" in text and "policy_loss" in text  # the close match


def test_an_unknown_algorithm_name_is_an_error_naming_it(tmp_path):
    path = _recipe(tmp_path, {"base": {}, "cov": {"learner.algorithm.policy_loss.name": "clip_kov"}})
    with pytest.raises(ConfigError) as error:
        load_recipe(path)
    text = str(error.value)
    assert "clip_kov" in text and "arm 'cov'" in text and "clip_cov" in text  # the valid names are listed


def test_an_unknown_transform_in_a_list_is_an_error_naming_it(tmp_path):
    path = _recipe(tmp_path, {"base": {}, "t": {"learner.algorithm.transforms": [{"name": "nsr_onlyy"}]}})
    with pytest.raises(ConfigError, match="nsr_onlyy"):
        load_recipe(path)


def test_arms_may_not_set_what_the_harness_sets(tmp_path):
    path = _recipe(tmp_path, {"base": {}, "s": {"seed": 3}})
    with pytest.raises(ConfigError, match="harness sets"):
        load_recipe(path)


def test_unknown_arm_scale_and_clashing_overrides_are_errors(tmp_path):
    loaded = load_recipe("nsr-psr")
    with pytest.raises(ConfigError, match="no arm 'bogus'"):
        expand(loaded, "tiny", 1, tmp_path, arms=["bogus"])
    with pytest.raises(ConfigError, match="an arm of nsr-psr names"):
        expand(loaded, "tiny", 1, tmp_path, overrides=["learner.algorithm.transforms=[]"])
    runs = expand(loaded, "tiny", 1, tmp_path, overrides=["learner.max_steps=2"], arms=["nsr"])
    assert [(r.arm, r.config.learner.max_steps) for r in runs] == [("nsr", 2)]
    with pytest.raises(ConfigError, match="unknown recipe|no recipe"):
        load_recipe("no-such-recipe")

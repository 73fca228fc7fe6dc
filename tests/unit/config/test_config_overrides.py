"""Command-line `KEY=VALUE` overrides (outrider.config.overrides): parsed, typed by the
config models, checked key by key, and every problem named by its key."""

from __future__ import annotations

import textwrap

import pytest

from outrider.config import ConfigError, load_config, load_service_config
from outrider.config.learner import OptimizerConfig
from outrider.config.overrides import is_override, parse_override

RUN = """\
kind: run
name: ovr
rollout:
  envs: [math]
  group_size: 8
learner:
  optimizer: {lr: 1.0e-6, warmup_steps: 5}
  algorithm:
    policy_loss: {name: ppo_clip}
env:
  builtin_params:
    math: {difficulty: "0-1"}
"""

SFT = """\
kind: sft
name: sft-ovr
data: {path: data.jsonl}
"""


@pytest.fixture
def run_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(RUN)
    return path


def _problems(path, *overrides) -> dict[str, str]:
    with pytest.raises(ConfigError) as error:
        load_config(path, list(overrides))
    assert error.value.source == str(path)
    return dict(error.value.problems)


# -- parsing ----------------------------------------------------------------------


def test_a_dotted_key_splits_into_fields_and_list_indexes_in_either_spelling():
    assert parse_override("learner.optimizer.lr=3e-6").path == ("learner", "optimizer", "lr")
    dotted, bracketed = parse_override("curriculum.pools.0.page_size=2"), parse_override("curriculum.pools[0].page_size=2")
    assert dotted.path == bracketed.path == ("curriculum", "pools", 0, "page_size")
    # The key as validation errors spell it, so problems can be matched to overrides.
    assert dotted.key == "curriculum.pools[0].page_size"


def test_the_value_is_everything_after_the_first_equals_sign():
    override = parse_override("env.builtin_params.math.difficulty=a=b=c")
    assert override.path == ("env", "builtin_params", "math", "difficulty")
    assert override.raw == "a=b=c"


@pytest.mark.parametrize("text", ["learner.optimizer.lr", "=3", "learner..lr=3", "a b=1", "runs/x.yaml=1"])
def test_an_argument_that_is_not_key_equals_value_is_refused_by_name(text):
    with pytest.raises(ConfigError) as error:
        parse_override(text)
    assert f"override {text!r}: expected KEY=VALUE" in str(error.value)
    assert not is_override(text)


def test_the_kind_cannot_be_overridden():
    with pytest.raises(ConfigError, match="the kind of a config is set in its file"):
        parse_override("kind=sft")


# -- values, typed by the field they set ------------------------------------------


def test_nested_numbers_are_numbers(run_file):
    config = load_config(run_file, ["learner.optimizer.lr=3e-6", "rollout.group_size=16"])
    # PyYAML reads `3e-6` (no dot) as text; the float field makes it 3e-6.
    assert config.learner.optimizer.lr == 3e-6
    assert config.rollout.group_size == 16 and isinstance(config.rollout.group_size, int)
    assert config.learner.optimizer.warmup_steps == 5  # the file's other values stay


def test_bools_lists_and_null(run_file):
    config = load_config(
        run_file,
        ["learner.engine.gradient_checkpointing=true", "evaluation.enabled=false", "rollout.envs=[math, countdown]",
         "learner.optimizer.betas=[0.8, 0.95]", "learner.seed=null"],
    )
    assert config.learner.engine.gradient_checkpointing is True and config.evaluation.enabled is False
    assert config.rollout.envs == ["math", "countdown"]
    assert config.learner.optimizer.betas == (0.8, 0.95)
    assert config.learner.seed is None


def test_text_fields_take_the_text_as_given(run_file):
    # YAML 1.1 would read these as int 2024, int 90 (sexagesimal) and True.
    config = load_config(run_file, ["name=2024", "output_dir=1:30", "env.builtin_params.math.difficulty=on"])
    assert config.name == "2024" and config.output_dir == "1:30"
    assert config.env.builtin_params["math"] == {"difficulty": "on"}


def test_strings_with_equals_signs_and_an_empty_value(run_file):
    config = load_config(run_file, ["env.builtin_params.math.difficulty=a=b", "output_dir="])
    assert config.env.builtin_params["math"]["difficulty"] == "a=b"
    assert config.output_dir == ""


def test_a_later_override_of_the_same_key_wins(run_file):
    assert load_config(run_file, ["rollout.group_size=4", "rollout.group_size=12"]).rollout.group_size == 12


def test_dict_keys_and_free_form_params(run_file):
    config = load_config(
        run_file, ["stack.addresses.policy=127.0.0.1:50051", "learner.algorithm.policy_loss.params.clip_eps_high=0.28"]
    )
    assert config.stack.addresses == {"policy": "127.0.0.1:50051"}
    assert config.learner.algorithm.policy_loss.name == "ppo_clip"
    assert config.learner.algorithm.policy_loss.params == {"clip_eps_high": 0.28}
    # An untyped value written with an exponent and no dot is a number too (PyYAML alone
    # reads `28e-2` as text, which the algorithm's float parameter would refuse).
    params = load_config(run_file, ["learner.algorithm.policy_loss.params.clip_eps_high=28e-2"]).learner.algorithm.policy_loss.params
    assert params == {"clip_eps_high": 0.28} and isinstance(params["clip_eps_high"], float)


def test_a_list_item_by_number(run_file):
    config = load_config(run_file, ["curriculum.pools.0.page_size=7"])
    assert [pool.page_size for pool in config.curriculum.pools] == [7]
    assert config.curriculum.pools[0].type == "env-service"  # the default pool, not a bare one


def test_a_section_the_file_leaves_out_keeps_its_default_values(tmp_path):
    (tmp_path / "sft.yaml").write_text(SFT)
    # OfflineTrainConfig's default optimizer is OptimizerConfig(lr=1e-5), not the class default.
    assert OptimizerConfig().lr == 1e-6
    config = load_config(tmp_path / "sft.yaml", ["optimizer.grad_clip=0.5"])
    assert config.optimizer.grad_clip == 0.5 and config.optimizer.lr == 1e-5
    run = tmp_path / "run.yaml"
    run.write_text(RUN)
    # KLConfig's default controller is Algorithm(name="fixed", params={"kl_coef": 0.001}).
    controller = load_config(run, ["learner.algorithm.kl.controller.params.kl_coef=0.01"]).learner.algorithm.kl.controller
    assert controller.name == "fixed" and controller.params == {"kl_coef": 0.01}


def test_a_tagged_union_member_is_switched_by_its_tag_then_its_own_fields_apply(run_file):
    config = load_config(run_file, ["curriculum.strategy.type=ordered", "curriculum.strategy.promote_at=0.9"])
    assert config.curriculum.strategy.type == "ordered" and config.curriculum.strategy.promote_at == 0.9
    assert config.curriculum.strategy.min_attempts == 32  # OrderedStrategy's default


def test_the_file_on_disk_is_left_as_it_was(run_file):
    load_config(run_file, ["rollout.group_size=16"])
    assert run_file.read_text() == RUN
    assert load_config(run_file).rollout.group_size == 8


def test_a_service_config_without_a_file_takes_its_own_keys():
    config = load_service_config("policy", None, ["model=tiny-random", "server.port=0"])
    assert config.model == "tiny-random" and config.server.port == 0


# -- errors name the key ---------------------------------------------------------------


def test_an_unknown_key_names_the_key_and_the_closest_fields(run_file):
    problems = _problems(run_file, "learner.optimizer.lrr=3e-6")
    assert problems == {"learner.optimizer.lrr": "unknown field (override 'learner.optimizer.lrr=3e-6'); did you mean lr?"}
    problems = _problems(run_file, "learner.optimzer.lr=3e-6")
    assert problems == {"learner.optimzer": "unknown field (override 'learner.optimzer.lr=3e-6'); did you mean optimizer?"}


def test_an_unknown_key_without_a_close_match_lists_the_fields_there(run_file):
    problems = _problems(run_file, "bus.zzz=1")
    assert list(problems) == ["bus.zzz"]
    assert "fields of bus: " in problems["bus.zzz"] and "max_len" in problems["bus.zzz"]


def test_a_field_of_the_other_union_member_is_unknown_under_the_current_tag(run_file):
    # The default strategy is `learnability`, which has no promote_at.
    problems = _problems(run_file, "curriculum.strategy.promote_at=0.9")
    assert list(problems) == ["curriculum.strategy.promote_at"]
    assert problems["curriculum.strategy.promote_at"].startswith("unknown field")


def test_a_wrong_type_names_the_key_and_the_override(run_file):
    problems = _problems(run_file, "rollout.group_size=many")
    assert problems == {
        "rollout.group_size": "Input should be a valid integer, unable to parse string as an integer (got 'many') "
        "(command line: rollout.group_size=many)"
    }


def test_an_out_of_bounds_value_names_the_key_and_the_override(run_file):
    problems = _problems(run_file, "learner.optimizer.lr=-1")
    assert problems == {"learner.optimizer.lr": "Input should be greater than 0 (got -1) (command line: learner.optimizer.lr=-1)"}


def test_a_cross_field_rule_broken_by_an_override_names_it(run_file):
    problems = _problems(run_file, "stack.mode=cluster")
    assert list(problems) == ["stack"]
    assert "cluster mode needs addresses" in problems["stack"] and "(command line: stack.mode=cluster)" in problems["stack"]


def test_a_value_has_no_fields(run_file):
    problems = _problems(run_file, "rollout.group_size.x=1")
    assert problems == {"rollout.group_size.x": "rollout.group_size is a value (int), it has no field 'x' (override 'rollout.group_size.x=1')"}


def test_a_list_item_that_is_not_there_is_named(run_file):
    problems = _problems(run_file, "curriculum.pools.3.page_size=7")
    assert list(problems) == ["curriculum.pools[3]"]
    assert "no item 3: curriculum.pools has 1" in problems["curriculum.pools[3]"]


def test_a_problem_of_the_file_itself_is_not_blamed_on_an_override(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent("""\
        rollout: {group_size: 0}
        """))
    problems = _problems(path, "learner.optimizer.lr=3e-6")
    assert list(problems) == ["rollout.group_size"]
    assert "command line" not in problems["rollout.group_size"]
    # ... and an override can mend it.
    assert load_config(path, ["rollout.group_size=4"]).rollout.group_size == 4

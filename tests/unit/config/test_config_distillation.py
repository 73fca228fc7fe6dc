"""`learner.algorithm.distillation`: defaults, and each misconfiguration named by its path."""

from __future__ import annotations

import pytest

from outrider.config import ConfigError, parse_config


def _distillation(**fields):
    return {"learner": {"algorithm": {"distillation": fields}}}


def _problems(data) -> dict[str, str]:
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    return dict(error.value.problems)


def test_off_by_default_and_parsed_when_set():
    assert parse_config({}).learner.algorithm.distillation.teacher is None
    cfg = parse_config(_distillation(teacher="tiny-random", placement="loss", coef=0.5, rl_coef=0.0)).learner
    distillation = cfg.algorithm.distillation
    assert (distillation.teacher, distillation.placement, distillation.coef, distillation.rl_coef) == ("tiny-random", "loss", 0.5, 0.0)
    assert distillation.estimator.name == "k3_is"


def test_k1_is_refused_as_a_distillation_loss():
    problems = _problems(_distillation(teacher="tiny-random", placement="loss", estimator={"name": "k1"}))
    assert list(problems) == ["learner.algorithm.distillation"]
    assert "k1 has expected gradient 0" in problems["learner.algorithm.distillation"]


def test_rl_coef_without_a_teacher_is_refused():
    problems = _problems(_distillation(rl_coef=0.0))
    assert "set teacher" in problems["learner.algorithm.distillation"]


def test_unknown_estimator_and_bad_bounds_are_named():
    problems = _problems(_distillation(teacher="tiny-random", estimator={"name": "k9"}, coef=0.0))
    assert set(problems) == {"learner.algorithm.distillation.estimator", "learner.algorithm.distillation.coef"}
    assert "k9" in problems["learner.algorithm.distillation.estimator"]

"""python-tool's `max_factor`: the CPU-sized level 0 of examples/grpo-python-tool-cpu.yaml."""

from __future__ import annotations

import pytest

from outrider.envs.builtin.python_tool_env import PythonToolEnv
from outrider.envs.interface import ParamError


def _factors(preview: str) -> tuple[int, int]:
    a, b = preview.removeprefix("What is ").removesuffix("?").split(" * ")
    return int(a), int(b)


def test_level_0_multiplies_4_to_5_digit_numbers_by_default():
    for task in PythonToolEnv({"difficulty": "0", "num_train": "50", "num_test": "10"}).tasks("train"):
        a, b = _factors(task.preview)
        assert 1000 <= a <= 99999 and 1000 <= b <= 99999 and int(task.reference) == a * b


def test_max_factor_bounds_both_factors_and_keeps_the_splits_disjoint():
    env = PythonToolEnv({"difficulty": "0", "max_factor": "12"})
    seen = set()
    for task in env.tasks("train") + env.tasks("test"):
        a, b = _factors(task.preview)
        assert 2 <= a <= 12 and 2 <= b <= 12 and int(task.reference) == a * b
        seen |= {a, b}
    assert seen == set(range(2, 13))  # 1000 draws from 121 problems reach every factor
    train, test = ({t.preview for t in env.tasks(split)} for split in ("train", "test"))
    assert train and test and not train & test


@pytest.mark.parametrize("value", ["1", "100000", "ten"])
def test_a_bad_max_factor_is_rejected_with_the_param_named(value):
    with pytest.raises(ParamError, match="params.max_factor"):
        PythonToolEnv({"max_factor": value})

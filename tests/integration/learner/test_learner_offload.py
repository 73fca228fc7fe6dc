"""ZeRO-Offload (optimizer state, and parameters under ZeRO-3) and bf16 on CPU, for real.

The first run compiles DeepSpeed's CPU Adam op (about 2 minutes) into
TORCH_EXTENSIONS_DIR (~/.cache/outrider/torch_extensions); later runs reuse it.
"""

from __future__ import annotations

import time

import pytest

from testkit.learner import (
    completion_margin,
    finish,
    learn_process,
    learnable_groups,
    metrics,
    produce_groups,
    write_run_config,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "engine",
    [
        {"zero_stage": 2, "offload_optimizer": True},
        {"zero_stage": 3, "offload_optimizer": True, "offload_params": True},
        {"zero_stage": 2, "dtype": "bf16", "gradient_checkpointing": True},
    ],
    ids=["zero2-offload-optimizer", "zero3-offload-all", "zero2-bf16-checkpointing"],
)
def test_engine_variants_train(any_redis_url, tmp_path, engine):
    prefix = f"variant-{time.monotonic_ns()}"
    produce_groups(any_redis_url, prefix, learnable_groups(6, prefix="o"))
    run_dir = tmp_path / "run"
    learner = {"max_steps": 3, "engine": {**engine, "micro_batch_tokens": 128}, "optimizer": {"lr": 1e-3}}
    finish(learn_process(write_run_config(tmp_path / "run.yaml", run_dir, any_redis_url, prefix, learner)), timeout=900)
    records = metrics(run_dir)
    assert [m["step"] for m in records] == [1, 2, 3]
    assert all(m["actor/grad_norm"] > 0 for m in records)
    # The updates went somewhere useful: the rewarded completion gained against the other.
    assert completion_margin(run_dir / "final") > completion_margin(_initial()) + 0.5


def _initial():
    from outrider.models import resolve_model

    return resolve_model("tiny-random")

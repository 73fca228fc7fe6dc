"""Lagrangian reward constraints in the real learner: λ logged per step, moved by the measured
violation, and continued exactly across a stop and --resume (DeepSpeed on gloo, CPU)."""

from __future__ import annotations

import time

import pytest

from outrider.proto.v1.common_pb2 import RewardComponent, RewardConstraint
from testkit.learner import checkpoint_state, finish, learn_process, learnable_groups, metrics, produce_groups, write_run_config

pytestmark = pytest.mark.slow

LEARNER = {"ranks": 1, "engine": {"micro_batch_tokens": 64}, "algorithm": {"constraints": {"lr": 0.5}}}


def constrained_groups(name: str):
    """The learnable groups, each episode carrying `math` and a `length` cost held to ≤ 0.5:
    the good (rewarded) episodes are long (0.9, g = 0.4), the bad short (0.3, g = −0.2)."""
    groups = learnable_groups(8, prefix=name)
    for group in groups:
        for traj in group.trajectories:
            good = traj.outcome_reward == 1.0
            traj.reward_components.extend([
                RewardComponent(name="math", value=traj.outcome_reward, weight=1.0),
                RewardComponent(name="length", value=0.9 if good else 0.3, weight=1.0, constraint=RewardConstraint(threshold=0.5)),
            ])
    return groups


def test_lambda_rises_with_violations_and_survives_a_restart(any_redis_url, tmp_path):
    results, states = {}, {}
    for name, stops in {"straight": [4], "interrupted": [2, 4]}.items():
        prefix = f"constraints-{name}-{time.monotonic_ns()}"
        produce_groups(any_redis_url, prefix, constrained_groups(name))
        run_dir = tmp_path / name
        config = write_run_config(tmp_path / f"{name}.yaml", run_dir, any_redis_url, prefix, LEARNER)
        for index, stop in enumerate(stops):
            finish(learn_process(config, "--max-steps", str(stop), *(["--resume"] if index else [])))
        results[name] = {m["step"]: m for m in metrics(run_dir)}
        states[name] = checkpoint_state(run_dir)
    straight, interrupted = results["straight"], results["interrupted"]
    # Mean violation (0.4 − 0.2)/2 = 0.1 every step, η = 0.5: λ (as used by step s) = 0.05·(s − 1).
    assert [straight[s]["constraint/length/lambda"] for s in (1, 2, 3, 4)] == pytest.approx([0.0, 0.05, 0.1, 0.15], abs=1e-9)
    for step in (1, 2, 3, 4):
        m = straight[step]
        assert m["constraint/length/violation"] == pytest.approx(0.1, abs=1e-9)
        assert m["reward/length"] == pytest.approx(0.6, abs=1e-9) and m["reward/math"] == pytest.approx(0.5, abs=1e-9)
        # R: good 1 − λ·0.4, bad 0: mean (1 − 0.4λ)/2.
        assert m["reward_mean"] == pytest.approx((1 - 0.4 * 0.05 * (step - 1)) / 2, abs=1e-6)
    for step in (3, 4):  # resumed from the step-2 checkpoint: the same λ, reward and loss
        for key in ("constraint/length/lambda", "reward_mean", "actor/loss"):
            assert interrupted[step][key] == straight[step][key], key
    assert states["straight"]["multipliers"] == pytest.approx({"length": 0.2}, abs=1e-9)
    assert states["interrupted"]["multipliers"] == states["straight"]["multipliers"]

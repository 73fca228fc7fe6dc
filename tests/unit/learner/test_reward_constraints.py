"""The learner's reward components: per-step means, Lagrangian penalties and λ across steps and resume."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch

from outrider.config.learner import ConstraintsConfig
from outrider.learner.batch import build_batch
from outrider.learner.checkpoint import LATEST, LearnerState, read_state
from outrider.learner.objectives import ConstraintMultipliers, component_table
from outrider.proto.v1.common_pb2 import RewardComponent, RewardConstraint
from outrider.proto.v1.trajectory_pb2 import INFRA_FAILURE_ENV_ERROR, Trajectory, TrajectoryGroup


def traj(reward: float, correct: float, length: float | None, failed: bool = False) -> Trajectory:
    components = [RewardComponent(name="math", value=correct, weight=1.0)]
    if length is not None:  # a cost held to ≤ 0.5
        components.append(RewardComponent(name="length", value=length, weight=1.0, constraint=RewardConstraint(threshold=0.5)))
    return Trajectory(
        prompt_length=1, token_ids=[1, 2, 3], logprobs=[0.0, -0.5, -0.5], loss_mask=[False, True, True],
        outcome_reward=reward, reward_components=components,
        infra_failure=INFRA_FAILURE_ENV_ERROR if failed else 0,
    )


def groups(lengths: list[float | None], failed_last: bool = False) -> list[TrajectoryGroup]:
    trajectories = [traj(1.0, 1.0, length) for length in lengths]
    if failed_last:
        trajectories[-1] = traj(1.0, 1.0, 9.0, failed=True)
    return [TrajectoryGroup(group_id="g", trajectories=trajectories)]


def step(multipliers: ConstraintMultipliers, data: list[TrajectoryGroup]):
    batch = build_batch(data)
    return multipliers.step(component_table(data), batch.rewards, batch.valid)


def test_penalty_uses_lambda_before_its_update_and_violation_raises_it():
    m = ConstraintMultipliers(ConstraintsConfig(lr=0.5, initial=1.0))
    # Lengths 0.9, 0.3, and a failed episode (9.0, measured nothing): g = 0.4, −0.2.
    rewards, metrics = step(m, groups([0.9, 0.3, None], failed_last=True))
    # λ = 1 (initial): R = 1 − 1·max(0, 0.4) = 0.6; 1 − 0 = 1; the failed row pays 1·8.5 but is not trained.
    assert rewards.tolist()[:2] == pytest.approx([0.6, 1.0], abs=1e-6)
    assert metrics["constraint/length/lambda"] == 1.0
    assert metrics["constraint/length/violation"] == pytest.approx(0.1, abs=1e-12)  # (0.4 − 0.2) / 2
    assert metrics["constraint/length/violated_fraction"] == pytest.approx(0.5, abs=1e-12)
    assert metrics["reward/length"] == pytest.approx(0.6, abs=1e-12)  # (0.9 + 0.3) / 2, failed row left out
    assert metrics["reward/math"] == pytest.approx(1.0, abs=1e-12)
    assert m.state_dict() == {"length": pytest.approx(1.05, abs=1e-12)}  # 1 + 0.5·0.1


def test_a_violated_constraint_keeps_rising_and_a_held_one_decays_to_zero():
    m = ConstraintMultipliers(ConstraintsConfig(lr=0.5))
    for expected in (0.15, 0.3, 0.45):  # lengths 0.8: g = 0.3 on every episode, +0.15 a step
        step(m, groups([0.8, 0.8]))
        assert m.state_dict()["length"] == pytest.approx(expected, abs=1e-12)
    for expected in (0.25, 0.05, 0.0, 0.0):  # lengths 0.1: g = −0.4, −0.2 a step, floored at 0
        rewards, _ = step(m, groups([0.1, 0.1]))
        assert m.state_dict()["length"] == pytest.approx(expected, abs=1e-12)
        assert rewards.tolist() == [1.0, 1.0]  # satisfied constraints cost nothing
    assert m.state_dict()["length"] == 0.0


def test_no_constraint_carried_leaves_rewards_and_lambda_alone():
    m = ConstraintMultipliers(ConstraintsConfig())
    data = groups([None, None])
    batch = build_batch(data)
    rewards, metrics = m.step(component_table(data), batch.rewards, batch.valid)
    assert torch.equal(rewards, batch.rewards)
    assert metrics == {"reward/math": 1.0} and m.state_dict() == {}
    assert component_table([TrajectoryGroup(group_id="e", trajectories=[Trajectory(token_ids=[1, 2])])]) is None


def test_lambda_survives_a_checkpoint_round_trip(tmp_path):
    """Resume equivalence: λ written in LearnerState and read back continues exactly."""
    straight = ConstraintMultipliers(ConstraintsConfig(lr=0.5))
    resumed = ConstraintMultipliers(ConstraintsConfig(lr=0.5))
    for _ in range(2):
        step(straight, groups([0.8, 0.8]))
        step(resumed, groups([0.8, 0.8]))
    state = LearnerState(step=2, multipliers=resumed.state_dict())
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "step-0000002.json").write_text(json.dumps(asdict(state)))
    (tmp_path / LATEST).write_text("step-0000002")
    restored = ConstraintMultipliers(ConstraintsConfig(lr=0.5))
    restored.load_state_dict(read_state(tmp_path).multipliers)
    a, _ = step(straight, groups([0.9, 0.1]))
    b, _ = step(restored, groups([0.9, 0.1]))
    assert torch.equal(a, b) and straight.state_dict() == restored.state_dict()
    # Two steps at g = 0.3 gave λ = 0.3; lengths 0.9 and 0.1 (g = 0.4, −0.4) average to 0: λ stays,
    # while the 0.9 episode pays 0.3·0.4.
    assert restored.state_dict()["length"] == pytest.approx(0.3, abs=1e-12)
    assert b.tolist() == pytest.approx([1.0 - 0.3 * 0.4, 1.0], abs=1e-6)


def test_disagreement_kl_takes_the_first_measure_as_baseline_and_scales_above_it():
    from outrider.config.learner import KLConfig
    from outrider.learner.objectives import DisagreementKL

    kl = DisagreementKL(gain=0.5)
    assert kl.scale({"reward/math": 1.0}) == 1.0 and kl.baseline is None  # nothing measured
    assert kl.scale({"reward/prm_disagreement": 0.2}) == 1.0 and kl.baseline == 0.2
    # 1 + 0.5·(0.3/0.2 − 1) = 1.25; back at the baseline: 1.
    assert kl.scale({"reward/prm_disagreement": 0.3}) == pytest.approx(1.25, abs=1e-12)
    assert kl.scale({"reward/prm_disagreement": 0.2}) == 1.0
    assert DisagreementKL(gain=0.0).scale({"reward/prm_disagreement": 9.0}) == 1.0
    with pytest.raises(ValueError, match="set placement to `reward` or `loss`"):
        KLConfig(disagreement_gain=1.0)

"""Group estimators on float32 rewards: equal rewards mean zero signal, exactly.

The regression: with float32 group statistics, eight rewards of 2/3 (partial credit)
or sixteen of 0.7 (a turn penalty) had a mean off by an ulp and a std of ~1e-8, and
(s − mean)/(std + eps) gave every token an advantage of 0.056 / 0.106 (the demo's
all-failed groups, eight rewards of −0.6, got −0.056). The expected values below are
exact zeros or hand-derived, never produced by the code under test.
"""

from __future__ import annotations

import pytest
import torch

from outrider.learner.algos import ADVANTAGE_ESTIMATORS, AdvantageInputs
from outrider.learner.algos.masked import group_uniform

F32 = torch.float32
GROUP_ESTIMATORS = ["grpo", "dr_grpo", "rloo", "opo", "reinforce_pp_baseline"]
# The groups of the bug report, plus the demo's all-failed group.
UNIFORM_GROUPS = [[2 / 3] * 8, [0.7] * 16, [-0.6] * 8]


def run(name: str, inputs: AdvantageInputs, **params):
    entry = ADVANTAGE_ESTIMATORS.get(name)
    return entry(inputs, entry.make_params(**params))


def one_group(rewards: list[float], tokens: int = 3) -> AdvantageInputs:
    b = len(rewards)
    return AdvantageInputs(
        rewards=torch.tensor(rewards, dtype=F32),
        mask=torch.ones(b, tokens, dtype=torch.bool),
        group_index=torch.zeros(b, dtype=torch.long),
    )


def test_float32_sum_really_is_off_for_these_groups():
    # The premise of the regression: without float64 and the uniformity check, these
    # groups do not centre to zero in float32.
    for rewards in UNIFORM_GROUPS:
        r = torch.tensor(rewards, dtype=F32)
        assert float((r - r.sum() / len(r)).abs().max()) > 0.0


@pytest.mark.parametrize("name", GROUP_ESTIMATORS)
@pytest.mark.parametrize("rewards", UNIFORM_GROUPS, ids=["8x2/3", "16x0.7", "8x-0.6"])
def test_uniform_float32_group_has_exactly_zero_advantage(name, rewards):
    out = run(name, one_group(rewards))
    assert out.advantages.dtype == F32
    assert torch.equal(out.advantages, torch.zeros_like(out.advantages))


@pytest.mark.parametrize("rewards", UNIFORM_GROUPS, ids=["8x2/3", "16x0.7", "8x-0.6"])
def test_grpo_process_uniform_outcome_and_steps_give_zero(rewards):
    b, t = len(rewards), 4
    step_mask = torch.zeros(b, t)
    step_mask[:, 1] = 1.0
    step_mask[:, 3] = 1.0
    # Every step reward 0.7 too: uniform over the group's steps.
    token_rewards = torch.where(step_mask.bool(), torch.tensor(0.7, dtype=F32), torch.tensor(0.0))
    inputs = AdvantageInputs(
        rewards=torch.tensor(rewards, dtype=F32),
        mask=torch.ones(b, t, dtype=torch.bool),
        group_index=torch.zeros(b, dtype=torch.long),
        token_rewards=token_rewards,
        step_mask=step_mask,
    )
    out = run("grpo_process", inputs)
    assert torch.equal(out.advantages, torch.zeros_like(out.advantages))


def test_uniform_group_next_to_a_mixed_group_hand_values():
    # Group 0: eight rewards of 2/3 -> advantage 0.
    # Group 1: rewards [1, 0, 0, 0]: mean 1/4, unbiased std sqrt((0.75² + 3·0.25²)/3) = 0.5,
    #   A = (r − 0.25)/(0.5 + 1e-6) = [0.75, −0.25, −0.25, −0.25] / 0.500001.
    rewards = [2 / 3] * 8 + [1.0, 0.0, 0.0, 0.0]
    inputs = AdvantageInputs(
        rewards=torch.tensor(rewards, dtype=F32),
        mask=torch.ones(12, 2, dtype=torch.bool),
        group_index=torch.tensor([0] * 8 + [1] * 4),
    )
    adv = run("grpo", inputs).advantages[:, 0]
    assert torch.equal(adv[:8], torch.zeros(8))
    expected = torch.tensor([0.75, -0.25, -0.25, -0.25], dtype=torch.float64) / 0.500001
    torch.testing.assert_close(adv[8:].double(), expected, rtol=0, atol=1e-7)


def test_uniformity_threshold_is_relative_1e6():
    # 0.7 and the next float32 up differ by 6e-8 (relative 8.5e-8): uniform.
    # 0.7 and 0.700002 differ by 2e-6 (relative 2.9e-6): a real, if small, signal.
    g = torch.zeros(2, dtype=torch.long)
    next_up = torch.nextafter(torch.tensor(0.7, dtype=F32), torch.tensor(1.0, dtype=F32))
    assert group_uniform(torch.stack([torch.tensor(0.7, dtype=F32), next_up]).double(), g).all()
    assert not group_uniform(torch.tensor([0.7, 0.700002], dtype=F32).double(), g).any()
    # All-zero groups are uniform; a group with a 0 and a 1e-9 is not (relative spread 1).
    assert group_uniform(torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.long)).all()
    assert not group_uniform(torch.tensor([0.0, 1e-9], dtype=torch.float64), g).any()


def test_small_real_signal_survives_in_grpo():
    # Rewards 0.7, 0.7, 0.7, 0.700002: not uniform, so GRPO must still rank the last one up.
    out = run("grpo", one_group([0.7, 0.7, 0.7, 0.700002]))
    adv = out.advantages[:, 0]
    assert float(adv[3]) > 0 > float(adv[0])
    assert float(adv[0]) == float(adv[1]) == float(adv[2])

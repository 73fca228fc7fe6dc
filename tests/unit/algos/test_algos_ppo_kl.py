"""PPO with an adaptive KL penalty to π_old: the loss, its gradient, and β's controller."""

from __future__ import annotations

import math

import pytest
import torch

from outrider.config import parse_config
from outrider.learner.algorithms import Algorithms, make_penalty_controller
from outrider.learner.algos import POLICY_LOSSES, PolicyLossInputs
from outrider.learner.algos.kl import PPOAdaptiveKLController
from outrider.learner.algos.policy_losses import PPOKLParams

F64 = torch.float64


def ppo_kl(inputs: PolicyLossInputs, **params):
    entry = POLICY_LOSSES.get("ppo_kl")
    return entry(inputs, entry.make_params(**params))


def one_token(ratio: float, advantage: float, beta: float | None):
    logprobs = torch.tensor([[math.log(ratio)]], dtype=F64, requires_grad=True)
    inputs = PolicyLossInputs(
        logprobs=logprobs,
        old_logprobs=torch.zeros(1, 1, dtype=F64),
        advantages=torch.tensor([[advantage]], dtype=F64),
        mask=torch.ones(1, 1, dtype=F64),
        penalty_coef=beta,
    )
    return logprobs, inputs


def test_loss_and_gradient_hand_values():
    # r = 1.2, A = 0.5, β = 0.3: L = −0.6 + 0.3·(1.2 − 1 − ln 1.2)
    #   = −0.6 + 0.3·(0.2 − 0.1823215568) = −0.6 + 0.0053035330 = −0.5946964670.
    logprobs, inputs = one_token(1.2, 0.5, 0.3)
    out = ppo_kl(inputs)
    assert out.loss.item() == pytest.approx(-0.5946964670, abs=1e-10)
    assert out.metrics["kl_old"].item() == pytest.approx(0.0176784432, abs=1e-10)
    assert out.metrics["penalty_coef"].item() == pytest.approx(0.3)
    # dL/dlog π = −A r + β (r − 1) = −0.6 + 0.06 = −0.54 (dr/dlog π = r).
    out.loss.sum().backward()
    assert logprobs.grad.item() == pytest.approx(-0.54, abs=1e-12)


def test_at_ratio_one_the_penalty_has_no_gradient():
    # KL(π_old‖π_θ) is minimal at π_θ = π_old: the gradient is REINFORCE's, −A.
    logprobs, inputs = one_token(1.0, 0.7, 5.0)
    ppo_kl(inputs).loss.sum().backward()
    assert logprobs.grad.item() == pytest.approx(-0.7, abs=1e-15)


def test_the_loss_needs_its_coefficient():
    _, inputs = one_token(1.0, 0.7, None)
    with pytest.raises(ValueError, match=r"policy loss 'ppo_kl' needs inputs\.penalty_coef"):
        ppo_kl(inputs)


def test_controller_doubles_and_halves_outside_the_band():
    # d_targ = 0.01, band [0.01/1.5, 0.015] = [0.00667, 0.015].
    c = PPOKLParams(target_kl=0.01, init_kl_coef=1.0).make_controller()
    assert c.update(0.02, 8) == 2.0  # above 0.015: doubled
    assert c.update(0.012, 8) == 2.0  # inside: kept
    assert c.update(0.015, 8) == 2.0  # the band's edge is inside
    assert c.update(0.005, 8) == 1.0  # below 0.00667: halved
    assert c.update(0.0, 8) == 0.5
    with pytest.raises(FloatingPointError):
        c.update(float("nan"), 8)


def test_controller_resume_is_equivalent():
    kls = [0.03, 0.001, 0.02, 0.02, 0.008, 0.0001]
    straight = PPOAdaptiveKLController(1.0, 0.01, 2.0, 1.5)
    for kl in kls:
        straight.update(kl, 1)
    first = PPOAdaptiveKLController(1.0, 0.01, 2.0, 1.5)
    for kl in kls[:3]:
        first.update(kl, 1)
    # Restored into a controller built with other settings: the state wins.
    resumed = PPOAdaptiveKLController(7.0, 0.5, 3.0, 2.0)
    resumed.load_state_dict(dict(first.state_dict()))
    for kl in kls[3:]:
        resumed.update(kl, 1)
    assert resumed.state_dict() == straight.state_dict()
    # 1 → 2 → 1 → 2 → 4 → 4 (0.008 is inside the band) → 2.
    assert straight.value == 2.0


def test_the_learner_keeps_a_controller_only_for_a_penalty_loss():
    cfg = parse_config({"learner": {"algorithm": {"policy_loss": {"name": "ppo_kl", "params": {"target_kl": 0.02, "init_kl_coef": 0.5}}}}})
    controller = make_penalty_controller(Algorithms.from_config(cfg.learner.algorithm))
    assert isinstance(controller, PPOAdaptiveKLController)
    assert (controller.value, controller.target, controller.factor, controller.tolerance) == (0.5, 0.02, 2.0, 1.5)
    assert make_penalty_controller(Algorithms.from_config(parse_config({}).learner.algorithm)) is None

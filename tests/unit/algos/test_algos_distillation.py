"""On-policy distillation: hand values, masking, placements, and the gradient it defines."""

from __future__ import annotations

import math

import pytest
import torch

from outrider.learner.algos import (
    KL_ESTIMATORS,
    POLICY_LOSSES,
    KLInputs,
    PolicyLossInputs,
    UnknownNameError,
    distilled_advantages,
    distilled_loss,
    get_distill_placement,
    reverse_kl_advantages,
)

F64 = torch.float64


def t64(x):
    return torch.tensor(x, dtype=F64)


def test_reverse_kl_advantages_hand_values():
    # π_s(y) = 1/2, π_T(y) = 1/4: d = log 2, A = −log 2.  π_s = 1/8, π_T = 1/2: A = +log 4.
    # The last position is off the mask and holds a NaN: it must not leak.
    student = t64([[math.log(0.5), math.log(0.125), float("nan")]])
    teacher = t64([[math.log(0.25), math.log(0.5), 0.0]])
    mask = t64([[1.0, 1.0, 0.0]])
    out = reverse_kl_advantages(student, teacher, mask)
    assert out[0].tolist() == pytest.approx([-math.log(2), math.log(4), 0.0], abs=1e-15)
    assert not out.requires_grad


def test_distilled_advantages_mix_the_rl_term_with_a_coefficient():
    # A^RL = [0.5, −1.0]; A^D = [log(0.2/0.4), log(0.3/0.1)] = [−log 2, log 3].
    # rl_coef 0.5, coef 2: [0.25 − 2 log 2, −0.5 + 2 log 3] = [−1.1362943611198906, 1.6972245773362196].
    rl = t64([[0.5, -1.0, 7.0]])
    student = t64([[math.log(0.4), math.log(0.1), 0.0]])
    teacher = t64([[math.log(0.2), math.log(0.3), 0.0]])
    mask = torch.tensor([[True, True, False]])
    out = distilled_advantages(rl, student, teacher, mask, coef=2.0, rl_coef=0.5)
    assert out[0, 0].item() == pytest.approx(0.25 - 2 * math.log(2), abs=1e-15)
    assert out[0, 1].item() == pytest.approx(-0.5 + 2 * math.log(3), abs=1e-15)
    assert out[0, 2].item() == 0.0  # off the mask, whatever A^RL held there
    alone = distilled_advantages(rl, student, teacher, mask, coef=1.0, rl_coef=0.0)
    assert alone[0, :2].tolist() == pytest.approx([-math.log(2), math.log(3)], abs=1e-15)


def test_distilled_loss_hand_values_and_mask():
    # rl_coef·L + coef·k with L = [0.3, −0.2], k = [0.1, 0.4], rl_coef 2, coef 0.5:
    # [0.6 + 0.05, −0.4 + 0.2] = [0.65, −0.2]; off the mask 0.
    policy = t64([[0.3, -0.2, 9.0]])
    kl = t64([[0.1, 0.4, float("inf")]])
    mask = t64([[1.0, 1.0, 0.0]])
    out = distilled_loss(policy, kl, mask, coef=0.5, rl_coef=2.0)
    assert out[0].tolist() == pytest.approx([0.65, -0.2, 0.0], abs=1e-15)


def test_distill_placements():
    assert get_distill_placement("advantage").in_advantage and not get_distill_placement("advantage").in_loss
    assert get_distill_placement("loss").in_loss and not get_distill_placement("loss").in_advantage
    assert not get_distill_placement("none").uses_teacher
    with pytest.raises(UnknownNameError, match="valid names: advantage, loss, none"):
        get_distill_placement("reward")


def _categorical(seed: int, v: int = 6):
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(v, generator=gen, dtype=F64).requires_grad_()
    teacher = torch.log_softmax(torch.randn(v, generator=gen, dtype=F64), -1)
    return theta, teacher


def _exact_reverse_kl_grad(theta, teacher):
    theta = theta.detach().clone().requires_grad_()
    logp = torch.log_softmax(theta, -1)
    (logp.exp() * (logp - teacher)).sum().backward()
    return theta.grad


@pytest.mark.parametrize("seed", range(3))
def test_advantage_placement_expected_gradient_is_the_reverse_kl_gradient(seed):
    # Every support point y as one token of a (1, V) "sequence", weighted by π(y): the
    # expectation over y ~ π of the `pg` loss −A^D(y)·log π_θ(y) must have the gradient of
    # KL(π_θ‖π_T) = Σ_y π(y)(log π(y) − log π_T(y)), computed here by autograd.
    theta, teacher = _categorical(seed)
    logp = torch.log_softmax(theta, -1)
    mask = torch.ones(1, theta.numel(), dtype=F64)
    advantages = distilled_advantages(torch.zeros_like(mask), logp.detach()[None], teacher[None], mask, 1.0, 0.0)
    entry = POLICY_LOSSES.get("pg")
    out = entry(PolicyLossInputs(logp[None], logp.detach()[None], advantages, mask), entry.default_params())
    (out.loss[0] * logp.detach().exp()).sum().backward()
    assert torch.allclose(theta.grad, _exact_reverse_kl_grad(theta, teacher), atol=1e-12, rtol=0)


@pytest.mark.parametrize("seed", range(3))
def test_loss_placement_with_k3_is_has_the_reverse_kl_value_and_gradient(seed):
    # Σ_y π_old(y)·k3_is(y) = KL(π_θ‖π_T) in value and gradient (tokens drawn from π_old = sg π_θ).
    theta, teacher = _categorical(seed)
    logp = torch.log_softmax(theta, -1)
    entry = KL_ESTIMATORS.get("k3_is")
    kl = entry(KLInputs(logp[None], teacher[None], logp.detach()[None]), entry.default_params())
    mask = torch.ones_like(kl)
    token_loss = distilled_loss(torch.zeros_like(kl), kl, mask, coef=1.0, rl_coef=0.0)
    objective = (token_loss[0] * logp.detach().exp()).sum()
    exact = (logp.exp() * (logp - teacher)).sum()
    assert objective.item() == pytest.approx(exact.item(), abs=1e-12)
    objective.backward()
    assert torch.allclose(theta.grad, _exact_reverse_kl_grad(theta, teacher), atol=1e-12, rtol=0)


def test_a_teacher_equal_to_the_student_gives_no_signal():
    theta, _ = _categorical(0)
    logp = torch.log_softmax(theta, -1)[None]
    mask = torch.ones_like(logp)
    assert reverse_kl_advantages(logp, logp.detach(), mask).abs().max().item() == 0.0
    entry = KL_ESTIMATORS.get("k3_is")
    kl = entry(KLInputs(logp, logp.detach(), logp.detach()), entry.default_params())
    token_loss = distilled_loss(torch.zeros_like(kl), kl, mask, coef=1.0, rl_coef=0.0)
    token_loss.sum().backward()
    assert token_loss.abs().max().item() == 0.0
    assert theta.grad.abs().max().item() == 0.0

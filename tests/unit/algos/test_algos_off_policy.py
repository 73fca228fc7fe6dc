"""Truncated importance sampling, off-policy sequence masking, dynamic sampling, overlong shaping."""

from __future__ import annotations

import math

import pytest
import torch

from outrider.learner.algos import LOSS_TRANSFORMS, POLICY_LOSSES, PolicyLossInputs
from outrider.learner.algos.off_policy import OverlongParams, dynamic_sampling_mask, overlong_penalty

F64 = torch.float64


def t64(x):
    return torch.tensor(x, dtype=F64)


def test_tis_token_hand_values():
    # log π_old − log π_rollout = [log 3, log 0.5, (masked) log 100]; C = 2:
    # w = [min(3, 2), min(0.5, 2), 1 (masked: neutral)] = [2, 0.5, 1]; an existing weight 0.5 multiplies.
    old = torch.zeros(1, 3, dtype=F64)
    rollout = -torch.log(t64([[3.0, 0.5, 100.0]]))
    mask = torch.tensor([[1, 1, 0]], dtype=torch.bool)
    inputs = PolicyLossInputs(old.clone(), old, old, mask, rollout_logprobs=rollout)
    out = LOSS_TRANSFORMS.get("tis_token")(inputs)
    torch.testing.assert_close(out.inputs.is_weights, t64([[2.0, 0.5, 1.0]]), rtol=0, atol=1e-12)
    assert out.metrics["tis_capped_frac"].item() == 0.5
    out = LOSS_TRANSFORMS.get("tis_token")(inputs.replace(is_weights=torch.full((1, 3), 0.5, dtype=F64)))
    torch.testing.assert_close(out.inputs.is_weights, t64([[1.0, 0.25, 0.5]]), rtol=0, atol=1e-12)


def test_tis_sequence_hand_values():
    # Row 0 token ratios [2, 0.75, masked 10]: product 1.5 < C = 2 -> w = 1.5 on its tokens.
    # Row 1 token ratios [2, 2]: product 4 -> capped at 2.
    old = torch.zeros(2, 3, dtype=F64)
    rollout = -torch.log(t64([[2.0, 0.75, 10.0], [2.0, 2.0, 1.0]]))
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]], dtype=torch.bool)
    inputs = PolicyLossInputs(old.clone(), old, old, mask, rollout_logprobs=rollout)
    out = LOSS_TRANSFORMS.get("tis_sequence")(inputs)
    torch.testing.assert_close(out.inputs.is_weights, t64([[1.5, 1.5, 1.0], [2.0, 2.0, 1.0]]), rtol=0, atol=1e-12)


def test_tis_scales_the_policy_gradient():
    gen = torch.Generator().manual_seed(0)
    logp = (-torch.rand(3, 4, generator=gen, dtype=F64)).requires_grad_()
    rollout = logp.detach() + 0.5 * torch.randn(3, 4, generator=gen, dtype=F64)
    adv = torch.randn(3, 4, generator=gen, dtype=F64)
    mask = torch.ones(3, 4, dtype=torch.bool)
    inputs = PolicyLossInputs(logp, logp.detach(), adv, mask, rollout_logprobs=rollout)
    weighted = LOSS_TRANSFORMS.get("tis_token")(inputs).inputs
    (g_plain,) = torch.autograd.grad(POLICY_LOSSES.get("ppo_clip")(inputs).loss.sum(), logp)
    (g_w,) = torch.autograd.grad(POLICY_LOSSES.get("ppo_clip")(weighted).loss.sum(), logp)
    w = torch.exp(logp.detach() - rollout).clamp(max=2.0)
    torch.testing.assert_close(g_w, g_plain * w, rtol=0, atol=1e-12)


def test_offpolicy_sequence_mask_hand_values():
    # δ = 0.1. Drift_i = mean_t (log π_rollout − log π_θ) over the row's tokens:
    #   row 0: 0.5 > δ, A < 0     -> masked
    #   row 1: 0.5 > δ, A > 0     -> kept (positive samples are always kept)
    #   row 2: 0.05 ≤ δ, A < 0    -> kept
    #   row 3: 0.5 > δ, A = [+1, −1] per token -> only the negative token is masked
    logp = torch.zeros(4, 2, dtype=F64)
    rollout = t64([[0.5, 0.5], [0.5, 0.5], [0.05, 0.05], [0.5, 0.5]])
    adv = t64([[-1.0, -1.0], [1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    inputs = PolicyLossInputs(logp, logp, adv, torch.ones(4, 2, dtype=torch.bool), rollout_logprobs=rollout)
    out = LOSS_TRANSFORMS.get("offpolicy_sequence_mask")(inputs)
    expected = torch.tensor([[0, 0], [1, 1], [1, 1], [1, 0]], dtype=torch.bool)
    assert torch.equal(out.inputs.mask, expected)
    assert out.metrics["offpolicy_masked_frac"].item() == 3 / 8
    # Without rollout log-probs π_old is the behaviour policy.
    out = LOSS_TRANSFORMS.get("offpolicy_sequence_mask")(inputs.replace(rollout_logprobs=None, old_logprobs=rollout))
    assert torch.equal(out.inputs.mask, expected)


def test_dynamic_sampling_mask_drops_constant_groups():
    # Groups: 5 -> [1, 1] (all correct, dropped), 2 -> [0, 1] (kept), 9 -> [0, 0, 0] (dropped).
    rewards = t64([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    groups = torch.tensor([5, 2, 5, 9, 2, 9, 9])
    keep = dynamic_sampling_mask(rewards, groups)
    assert keep.tolist() == [False, True, False, False, True, False, False]
    # With a tolerance, nearly-equal rewards count as equal.
    assert not dynamic_sampling_mask(t64([0.5, 0.5 + 1e-9]), torch.tensor([0, 0]), atol=1e-6).any()


def test_overlong_penalty_hand_values():
    # L_max = 10, L_cache = 4: no penalty up to 6, linear ramp (6 − |y|)/4 on (6, 10], −1 beyond.
    #   |y| = 5 -> 0, 6 -> 0, 8 -> −0.5, 10 -> −1, 11 -> −1
    out = overlong_penalty(torch.tensor([5, 6, 8, 10, 11]), OverlongParams(max_length=10, cache_length=4))
    torch.testing.assert_close(out, t64([0.0, 0.0, -0.5, -1.0, -1.0]), rtol=0, atol=1e-12)
    with pytest.raises(ValueError):
        overlong_penalty(torch.tensor([1]), OverlongParams(max_length=4, cache_length=8))
    assert math.isclose(overlong_penalty(torch.tensor([9]), OverlongParams(10, 4, penalty=2.0)).item(), -1.5)

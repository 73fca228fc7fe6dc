"""Policy losses and the value loss: hand values, defining-objective autograd checks, masking."""

from __future__ import annotations

import math

import pytest
import torch

from outrider.learner.algos import AGGREGATIONS, POLICY_LOSSES, AggregationInputs, PolicyLossInputs
from outrider.learner.algos.policy_losses import (
    ValueLossInputs,
    ValueLossParams,
    sequence_log_ratio,
    value_loss,
)

F64 = torch.float64


def t64(x):
    return torch.tensor(x, dtype=F64)


def token_mean(loss, mask):
    return AGGREGATIONS.get("token_mean")(AggregationInputs(loss, mask))


def hand_inputs():
    # Four tokens: (ratio, advantage) = (1.5, +1), (1.5, −1), (0.5, −1), (0.5, +1).
    old = torch.zeros(1, 4, dtype=F64)
    logp = torch.log(t64([[1.5, 1.5, 0.5, 0.5]])).requires_grad_()
    adv = t64([[1.0, -1.0, -1.0, 1.0]])
    return PolicyLossInputs(logp, old, adv, torch.ones(1, 4, dtype=torch.bool))


def test_ppo_clip_hand_values_and_gradients():
    # ε = 0.2:  L = max(−A r, −A clip(r, 0.8, 1.2))
    #   (1.5, +1): max(−1.5, −1.2) = −1.2  clipped -> dL/dlogπ = 0
    #   (1.5, −1): max( 1.5,  1.2) =  1.5  not clipped -> dL/dlogπ = −A r = 1.5
    #   (0.5, −1): max( 0.5,  0.8) =  0.8  clipped -> 0
    #   (0.5, +1): max(−0.5, −0.8) = −0.5  not clipped -> −A r = −0.5
    inputs = hand_inputs()
    out = POLICY_LOSSES.get("ppo_clip")(inputs)
    torch.testing.assert_close(out.loss, t64([[-1.2, 1.5, 0.8, -0.5]]), rtol=0, atol=1e-12)
    (grad,) = torch.autograd.grad(out.loss.sum(), inputs.logprobs)
    torch.testing.assert_close(grad, t64([[0.0, 1.5, 0.0, -0.5]]), rtol=0, atol=1e-12)
    # Clip fractions: tokens 1 and 3 clipped -> 0.5; low side (r < 0.8, A < 0): token 3 -> 0.25;
    # high side (r > 1.2, A > 0): token 1 -> 0.25.
    m = out.metrics
    assert m["clip_frac"].item() == 0.5 and m["clip_frac_low"].item() == 0.25 and m["clip_frac_high"].item() == 0.25
    # approx KL: k1 = mean(−log r) = −(2 log 1.5 + 2 log 0.5)/4 = −log(0.75)/2 = 0.14384103622589045;
    # k3 = mean(r − 1 − log r) equals k1 here because mean(r) = 1.
    assert abs(m["approx_kl_k1"].item() + math.log(0.75) / 2) < 1e-12
    assert abs(m["approx_kl_k3"].item() + math.log(0.75) / 2) < 1e-12


def test_clip_higher_and_dual_clip_hand_values():
    # Clip-higher, ε_high = 0.28: (1.5, +1) -> max(−1.5, −1.28) = −1.28.
    out = POLICY_LOSSES.get("clip_higher")(hand_inputs())
    assert abs(out.loss[0, 0].item() + 1.28) < 1e-12
    # Dual clip c = 3: ratio 5 with A = −1: PPO gives max(5, 1.2) = 5, capped at −c·A = 3,
    # and the cap is constant in θ, so the gradient is 0. Ratio 2, A = −1: 2 < 3, unchanged.
    logp = torch.log(t64([[5.0, 2.0]])).requires_grad_()
    inputs = PolicyLossInputs(logp, torch.zeros(1, 2, dtype=F64), t64([[-1.0, -1.0]]), torch.ones(1, 2, dtype=torch.bool))
    out = POLICY_LOSSES.get("dual_clip")(inputs)
    torch.testing.assert_close(out.loss, t64([[3.0, 2.0]]), rtol=0, atol=1e-12)
    (grad,) = torch.autograd.grad(out.loss.sum(), logp)
    torch.testing.assert_close(grad, t64([[0.0, 2.0]]), rtol=0, atol=1e-12)
    assert out.metrics["dual_clip_frac"].item() == 0.5


def random_inputs(seed, b=4, t=7, ratio_one=True, **extra):
    gen = torch.Generator().manual_seed(seed)
    logp = (-torch.rand(b, t, generator=gen, dtype=F64) * 3).requires_grad_()
    if ratio_one:
        old = logp.detach().clone()
    else:
        old = logp.detach() + 0.4 * torch.randn(b, t, generator=gen, dtype=F64)
    adv = torch.randn(b, t, generator=gen, dtype=F64)
    mask = torch.rand(b, t, generator=gen) > 0.3
    mask[:, 0] = True
    # penalty_coef: ppo_kl's β (the learner passes its controller's value; other losses ignore it).
    return PolicyLossInputs(logp, old, adv, mask, **{"penalty_coef": 0.5, **extra})


@pytest.mark.parametrize("name", ["ppo_clip", "dual_clip", "clip_higher", "gspo", "cispo", "pg", "kl_cov", "ppo_kl"])
@pytest.mark.parametrize("seed", range(3))
def test_gradient_at_ratio_one_equals_reinforce(name, seed):
    # At π_θ = π_old every ratio is 1, nothing is clipped, and the gradient of each surrogate
    # is the REINFORCE gradient −(1/N) Σ A ∇log π (KL-Cov's |log r| has zero slope at 0).
    inputs = random_inputs(seed)
    loss = token_mean(POLICY_LOSSES.get(name)(inputs).loss, inputs.mask)
    (grad,) = torch.autograd.grad(loss, inputs.logprobs)
    reinforce = token_mean(-inputs.advantages * inputs.logprobs, inputs.mask)
    (expected,) = torch.autograd.grad(reinforce, inputs.logprobs)
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-12)


def test_gspo_ratio_is_geometric_mean_of_token_ratios():
    gen = torch.Generator().manual_seed(0)
    logp = -torch.rand(3, 6, generator=gen, dtype=F64)
    old = logp + 0.3 * torch.randn(3, 6, generator=gen, dtype=F64)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0], [0, 1, 0, 1, 1, 0]], dtype=torch.bool)
    s = torch.exp(sequence_log_ratio(logp, old, mask))
    for i in range(3):
        ratios = [math.exp(logp[i, j].item() - old[i, j].item()) for j in range(6) if mask[i, j]]
        assert abs(s[i].item() - math.prod(ratios) ** (1 / len(ratios))) < 1e-12


@pytest.mark.parametrize("seed", range(3))
def test_gspo_matches_sequence_level_objective(seed):
    # With a sequence-level advantage A_i and seq-mean-token-mean aggregation, GSPO-token's
    # value and gradient equal those of −(1/B) Σ_i min(s_i A_i, clip(s_i, 1−ε_l, 1+ε_h) A_i),
    # s_i the geometric-mean ratio computed directly (with grad). Wide ε so some clip, some not.
    gen = torch.Generator().manual_seed(seed)
    b, t = 6, 5
    logp = (-torch.rand(b, t, generator=gen, dtype=F64)).requires_grad_()
    old = logp.detach() + 0.3 * torch.randn(b, t, generator=gen, dtype=F64)
    mask = torch.rand(b, t, generator=gen) > 0.3
    mask[:, 0] = True
    adv_seq = torch.randn(b, generator=gen, dtype=F64)
    adv = adv_seq[:, None].expand(b, t).clone()
    entry = POLICY_LOSSES.get("gspo")
    params = entry.make_params(clip_eps_low=0.05, clip_eps_high=0.05)
    out = entry(PolicyLossInputs(logp, old, adv, mask), params)
    loss = AGGREGATIONS.get("seq_mean_token_mean")(AggregationInputs(out.loss, mask))
    (grad,) = torch.autograd.grad(loss, logp)

    lp = logp.detach().clone().requires_grad_()
    s = torch.exp(((lp - old) * mask).sum(-1) / mask.sum(-1))
    ref = -torch.minimum(s * adv_seq, s.clamp(0.95, 1.05) * adv_seq).mean()
    (ref_grad,) = torch.autograd.grad(ref, lp)
    assert abs(loss.item() - ref.item()) < 1e-12
    torch.testing.assert_close(grad, ref_grad, rtol=0, atol=1e-12)
    clipped = ((s < 0.95) | (s > 1.05)).any()
    assert clipped or seed > 0  # the first seed exercises clipping


@pytest.mark.parametrize("seed", range(3))
def test_cispo_gradient_is_clipped_weight_reinforce(seed):
    # ∇L = −(1/N) Σ sg(clip(r, 1−ε_l, 1+ε_h)) A ∇log π, gradients kept on clipped tokens.
    inputs = random_inputs(seed, ratio_one=False)
    entry = POLICY_LOSSES.get("cispo")
    params = entry.make_params(clip_eps_low=0.1, clip_eps_high=0.2)
    out = entry(inputs, params)
    (grad,) = torch.autograd.grad(token_mean(out.loss, inputs.mask), inputs.logprobs)
    w = torch.exp(inputs.logprobs.detach() - inputs.old_logprobs).clamp(0.9, 1.2)
    ref = token_mean(-w * inputs.advantages * inputs.logprobs, inputs.mask)
    (expected,) = torch.autograd.grad(ref, inputs.logprobs)
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-12)
    # The value is the clipped-weight surrogate −ŵ A on the mask.
    torch.testing.assert_close(out.loss, torch.where(inputs.mask, -w * inputs.advantages, 0.0), rtol=0, atol=1e-12)
    assert out.metrics["clip_frac"].item() > 0  # some weights were truncated


@pytest.mark.parametrize("name", sorted(POLICY_LOSSES.names()))
def test_masked_tokens_change_nothing(name):
    # Garbage (finite) advantages / old log-probs / rollout log-probs on masked tokens change
    # neither the loss nor the gradient; the loss is 0 there.
    base = random_inputs(4, ratio_one=False)
    gen = torch.Generator().manual_seed(9)
    noise = 30 * torch.randn(base.mask.shape, generator=gen, dtype=F64)
    m = base.mask
    other = base.replace(advantages=torch.where(m, base.advantages, noise),
                         old_logprobs=torch.where(m, base.old_logprobs, noise))
    results = []
    for inputs in (base, other):
        out = POLICY_LOSSES.get(name)(inputs.replace(generator=torch.Generator().manual_seed(0)))
        (grad,) = torch.autograd.grad(token_mean(out.loss, m), inputs.logprobs)
        results.append((out.loss.detach(), grad))
        assert (out.loss[~m] == 0).all() and (grad[~m] == 0).all()
    # Clip-Cov/KL-Cov centre the covariance with means over unmasked tokens only, so their
    # token selection is unchanged too and the comparison is exact for every loss.
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=0)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(POLICY_LOSSES.names()))
def test_is_weights_scale_the_per_token_loss(name):
    base = random_inputs(5, ratio_one=False)
    w = torch.rand(base.mask.shape, generator=torch.Generator().manual_seed(1), dtype=F64) + 0.5
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731 - same Clip-Cov draw both times
    plain = POLICY_LOSSES.get(name)(base.replace(generator=gen())).loss
    weighted = POLICY_LOSSES.get(name)(base.replace(is_weights=w, generator=gen())).loss
    torch.testing.assert_close(weighted, plain * w, rtol=0, atol=1e-12)


def test_value_loss_hand_values():
    # V = 1.5, V_old = 1.0, R = 2.0, ε = 0.2:
    #   unclipped (1.5 − 2)² = 0.25; clipped V = 1.0 + 0.2 = 1.2, (1.2 − 2)² = 0.64
    #   L = ½ max(0.25, 0.64) = 0.32; without clipping L = ½·0.25 = 0.125.
    v = t64([[1.5]]).requires_grad_()
    inputs = ValueLossInputs(v, t64([[1.0]]), t64([[2.0]]), torch.ones(1, 1, dtype=torch.bool))
    out = value_loss(inputs, ValueLossParams())
    assert abs(out.loss.item() - 0.32) < 1e-12
    # The clipped term is constant in V here, so the gradient vanishes.
    (g,) = torch.autograd.grad(out.loss.sum(), v)
    assert g.item() == 0.0
    assert out.metrics["vf_clip_frac"].item() == 1.0
    out = value_loss(inputs, ValueLossParams(clip_eps=None))
    assert abs(out.loss.item() - 0.125) < 1e-12


def test_value_loss_ignores_masked_tokens():
    gen = torch.Generator().manual_seed(2)
    v = torch.randn(3, 5, generator=gen, dtype=F64)
    old = torch.randn(3, 5, generator=gen, dtype=F64)
    r = torch.randn(3, 5, generator=gen, dtype=F64)
    mask = torch.rand(3, 5, generator=gen) > 0.4
    noise = torch.randn(3, 5, generator=gen, dtype=F64) * 10
    a = value_loss(ValueLossInputs(v, old, r, mask), ValueLossParams()).loss
    b = value_loss(ValueLossInputs(torch.where(mask, v, noise), old, torch.where(mask, r, noise), mask),
                   ValueLossParams()).loss
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def _clip_loop(r, a, lo, hi, c):
    """Scalar PPO/dual-clip surrogate for one token, written out case by case."""
    clipped_r = min(max(r, 1 - lo), 1 + hi)
    loss = max(-a * r, -a * clipped_r)
    if c is not None and a < 0:
        loss = min(loss, -c * a)
    return loss


@pytest.mark.parametrize("name", ["ppo_clip", "dual_clip", "clip_higher", "gspo"])
@pytest.mark.parametrize("seed", range(3))
def test_clipped_losses_loop_vs_vectorized(name, seed):
    gen = torch.Generator().manual_seed(seed)
    b, t = int(torch.randint(1, 6, (1,), generator=gen)), int(torch.randint(1, 9, (1,), generator=gen))
    logp = -torch.rand(b, t, generator=gen, dtype=F64)
    old = logp + 0.8 * torch.randn(b, t, generator=gen, dtype=F64)
    adv = torch.randn(b, t, generator=gen, dtype=F64)
    mask = torch.rand(b, t, generator=gen) > 0.3
    entry = POLICY_LOSSES.get(name)
    params = entry.default_params()
    if name == "gspo":
        params = entry.make_params(clip_eps_low=0.1, clip_eps_high=0.15)
    out = entry(PolicyLossInputs(logp, old, adv, mask), params).loss
    c = getattr(params, "dual_clip_c", None)
    for i in range(b):
        valid = [j for j in range(t) if mask[i, j]]
        seq_r = math.exp(sum(logp[i, j].item() - old[i, j].item() for j in valid) / max(len(valid), 1))
        for j in range(t):
            r = seq_r if name == "gspo" else math.exp(logp[i, j].item() - old[i, j].item())
            expected = _clip_loop(r, adv[i, j].item(), params.clip_eps_low, params.clip_eps_high, c) if mask[i, j] else 0.0
            assert abs(out[i, j].item() - expected) < 1e-12, (i, j)

"""Clip-Cov, KL-Cov, entropy-shaped advantages, forking tokens, PSR/NSR reweighting."""

from __future__ import annotations

import math

import pytest
import torch

from outrider.learner.algos import LOSS_TRANSFORMS, POLICY_LOSSES, PolicyLossInputs

F64 = torch.float64


def t64(x):
    return torch.tensor(x, dtype=F64)


def cov_inputs(adv, old_shift=(0.0, 0.0, 0.0, 0.0), seed=0):
    # log π = [−1, −2, −3, −4]: centred [1.5, 0.5, −0.5, −1.5].
    logp = t64([[-1.0, -2.0, -3.0, -4.0]]).requires_grad_()
    old = logp.detach() - t64([list(old_shift)])
    return PolicyLossInputs(logp, old, t64([adv]), torch.ones(1, 4, dtype=torch.bool),
                            generator=torch.Generator().manual_seed(seed))


def test_clip_cov_detaches_a_random_high_covariance_token():
    # A = [4, 0, 0, −4] (mean 0) -> Cov = [1.5·4, 0, 0, −1.5·−4] = [6, 0, 0, 6].
    # ω = (1, 7): candidates are tokens 0 and 3; ⌊0.25·4⌋ = 1 of them is detached.
    # Ratios are 1, so kept tokens have the REINFORCE gradient −A/N (N = 4).
    entry = POLICY_LOSSES.get("clip_cov")
    params = entry.make_params(clip_ratio=0.25, cov_low=1.0, cov_high=7.0)
    chosen = set()
    for seed in range(8):
        inputs = cov_inputs([4.0, 0.0, 0.0, -4.0], seed=seed)
        out = entry(inputs, params)
        (grad,) = torch.autograd.grad(out.loss.sum() / 4, inputs.logprobs)
        detached = [j for j in (0, 3) if grad[0, j] == 0]
        assert len(detached) == 1
        kept = 3 - detached[0]
        assert abs(grad[0, kept].item() - (-inputs.advantages[0, kept].item() / 4)) < 1e-12
        assert out.metrics["cov_detach_frac"].item() == 0.25
        chosen.add(detached[0])
        # Same generator seed, same draw.
        again = entry(cov_inputs([4.0, 0.0, 0.0, -4.0], seed=seed), params)
        assert torch.equal(again.loss == 0, out.loss == 0)
    assert chosen == {0, 3}  # the draw is random, over 8 seeds both tokens were picked
    # ω_high = 5 excludes both (Cov = 6): nothing is detached.
    out = entry(cov_inputs([4.0, 0.0, 0.0, -4.0]), entry.make_params(clip_ratio=0.25))
    assert out.metrics["cov_detach_frac"].item() == 0.0


def test_clip_cov_skips_tokens_already_clipped_by_ppo():
    # Token 0 has ratio 1.5 with A = 4 > 0: PPO clips it, so the only candidate is token 3.
    entry = POLICY_LOSSES.get("clip_cov")
    params = entry.make_params(clip_ratio=0.25, cov_low=1.0, cov_high=7.0)
    for seed in range(4):
        inputs = cov_inputs([4.0, 0.0, 0.0, -4.0], old_shift=(math.log(1.5), 0, 0, 0), seed=seed)
        out = entry(inputs, params)
        assert out.loss[0, 3].item() == 0.0
        # Token 0 keeps its (clipped, constant) PPO loss −A·1.2 = −4.8.
        assert abs(out.loss[0, 0].item() + 4.8) < 1e-12


def test_kl_cov_penalizes_the_top_covariance_token():
    # A = [4, 0, 0, −3]: mean 0.25, centred [3.75, −0.25, −0.25, −3.25];
    # Cov = [1.5·3.75, 0.5·−0.25, −0.5·−0.25, −1.5·−3.25] = [5.625, −0.125, 0.125, 4.875].
    # k = ⌊0.25·4⌋ = 1 -> token 0 gets + β|log r|. log r = [0.1, 0.2, −0.1, 0.3], β = 1:
    #   L = [−4e^{0.1} + 0.1, 0, 0, 3e^{0.3}] (no ratio clipping in KL-Cov).
    entry = POLICY_LOSSES.get("kl_cov")
    inputs = cov_inputs([4.0, 0.0, 0.0, -3.0], old_shift=(0.1, 0.2, -0.1, 0.3))
    out = entry(inputs, entry.make_params(kl_ratio=0.25, kl_coef=1.0))
    expected = t64([[-4 * math.exp(0.1) + 0.1, 0.0, 0.0, 3 * math.exp(0.3)]])
    torch.testing.assert_close(out.loss, expected, rtol=0, atol=1e-12)
    assert out.metrics["cov_kl_frac"].item() == 0.25


def test_entropy_advantage_hand_values():
    # α = 0.4, κ = 2, H = 1 everywhere:
    #   A = 1   : bonus min(0.4, 0.5)  = 0.4  -> 1.4
    #   A = −1  : bonus min(0.4, 0.5)  = 0.4  -> −0.6 (still negative: the cap |A|/κ < |A|)
    #   A = 0.1 : bonus min(0.4, 0.05) = 0.05 -> 0.15
    #   A = 0   : bonus 0                     -> 0
    logp = torch.zeros(1, 5, dtype=F64, requires_grad=True)
    inputs = PolicyLossInputs(logp, logp.detach(), t64([[1.0, -1.0, 0.1, 0.0, 5.0]]),
                              torch.tensor([[1, 1, 1, 1, 0]], dtype=torch.bool), entropy=torch.ones(1, 5, dtype=F64))
    out = LOSS_TRANSFORMS.get("entropy_advantage")(inputs)
    # The masked token (A = 5) is left as is: the loss zeroes it anyway.
    torch.testing.assert_close(out.inputs.advantages, t64([[1.4, -0.6, 0.15, 0.0, 5.0]]), rtol=0, atol=1e-12)


def test_entropy_transforms_require_entropy():
    logp = torch.zeros(1, 2, dtype=F64)
    inputs = PolicyLossInputs(logp, logp, logp, torch.ones(1, 2, dtype=torch.bool))
    for name in ("entropy_advantage", "forking_tokens"):
        with pytest.raises(ValueError, match="entropy"):
            LOSS_TRANSFORMS.get(name)(inputs)


def test_forking_tokens_keeps_top_fraction_by_entropy():
    # 10 valid tokens with entropies 0.1..1.0 and one masked token with entropy 99.
    # ρ = 0.2: ⌈0.2·10⌉ = 2 tokens kept, the two largest valid entropies (0.9, 1.0).
    ent = t64([[0.1, 0.5, 0.9, 0.3, 99.0, 0.7, 1.0], [0.2, 0.4, 0.6, 0.8, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 1, 1], [1, 1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    logp = torch.zeros(2, 7, dtype=F64)
    inputs = PolicyLossInputs(logp, logp, logp, mask, entropy=ent)
    out = LOSS_TRANSFORMS.get("forking_tokens")(inputs)
    expected = torch.zeros(2, 7, dtype=torch.bool)
    expected[0, 2] = expected[0, 6] = True
    assert torch.equal(out.inputs.mask, expected)
    assert out.metrics["forking_kept_frac"].item() == 0.2


def test_sign_reweight_presets():
    # A = [2, −1, 0]: PSR-only [2, 0, 0]; NSR-only [0, −1, 0]; W-REINFORCE (λ+ = 0.1) [0.2, −1, 0].
    logp = torch.zeros(1, 3, dtype=F64)
    inputs = PolicyLossInputs(logp, logp, t64([[2.0, -1.0, 0.0]]), torch.ones(1, 3, dtype=torch.bool))
    expected = {"psr_only": [2.0, 0.0, 0.0], "nsr_only": [0.0, -1.0, 0.0], "w_reinforce": [0.2, -1.0, 0.0]}
    for name, values in expected.items():
        out = LOSS_TRANSFORMS.get(name)(inputs)
        torch.testing.assert_close(out.inputs.advantages, t64([values]), rtol=0, atol=1e-12)

"""Advantage estimators: hand-derived values, loop-vs-vectorized, invariances."""

from __future__ import annotations

import math

import pytest
import torch

from outrider.learner.algos import ADVANTAGE_ESTIMATORS, AdvantageInputs
from outrider.learner.algos.advantages import (
    GAEParams,
    GRPOParams,
    ReinforcePPParams,
    discounted_returns,
    gae_scan,
)
from outrider.learner.algos.masked import masked_mean, masked_var
from outrider.learner.algos.process_rewards import step_rewards_from_scores

F64 = torch.float64
TOL = dict(rtol=0, atol=1e-9)


def t64(x):
    return torch.tensor(x, dtype=F64)


def run(name, inputs, **params):
    entry = ADVANTAGE_ESTIMATORS.get(name)
    return entry(inputs, entry.make_params(**params))


# ---------------------------------------------------------------------------- GAE


def test_gae_hand_values_single_turn():
    # γ = 0.9, λ = 0.8, γλ = 0.72; outcome reward 1 at the last token, V = [0.5, 0.6, 0.7].
    # t=2: δ = 1 + 0.9·0 − 0.7 = 0.3                     A2 = 0.3
    # t=1: δ = 0 + 0.9·0.7 − 0.6 = 0.03                  A1 = 0.03 + 0.72·0.3 = 0.246
    # t=0: δ = 0 + 0.9·0.6 − 0.5 = 0.04                  A0 = 0.04 + 0.72·0.246 = 0.21712
    # returns = A + V = [0.71712, 0.846, 1.0]
    inputs = AdvantageInputs(rewards=t64([1.0]), mask=torch.ones(1, 3, dtype=torch.bool), values=t64([[0.5, 0.6, 0.7]]))
    out = run("gae", inputs, gamma=0.9, lam=0.8, normalize=False)
    torch.testing.assert_close(out.advantages, t64([[0.21712, 0.246, 0.3]]), **TOL)
    torch.testing.assert_close(out.returns, t64([[0.71712, 0.846, 1.0]]), **TOL)


def test_gae_multi_turn_skips_environment_tokens_hand_values():
    # Tokens: policy, policy, env, env, policy. Outcome R = 1 at token 4.
    # γ = 0.5, λ = 1: A_t = G_t − V_t with G over policy tokens only:
    #   G_4 = 1, G_1 = 0.5·G_4 = 0.5, G_0 = 0.5·G_1 = 0.25  (env tokens are not time steps)
    #   A = [0.25 − 0.2, 0.5 − 0.4, 0, 0, 1 − 0.5] = [0.05, 0.1, 0, 0, 0.5]
    # Env values (9.0) and env rewards (7.0) are never read.
    mask = torch.tensor([[1, 1, 0, 0, 1]], dtype=torch.bool)
    values = t64([[0.2, 0.4, 9.0, 9.0, 0.5]])
    token_rewards = t64([[0.0, 0.0, 7.0, 7.0, 0.0]])
    inputs = AdvantageInputs(rewards=t64([1.0]), mask=mask, values=values, token_rewards=token_rewards)
    out = run("gae", inputs, gamma=0.5, lam=1.0, normalize=False)
    torch.testing.assert_close(out.advantages, t64([[0.05, 0.1, 0.0, 0.0, 0.5]]), **TOL)
    # returns = A + V on policy tokens = [0.25, 0.5, 0, 0, 1]
    torch.testing.assert_close(out.returns, t64([[0.25, 0.5, 0.0, 0.0, 1.0]]), **TOL)


def _gae_reference(rewards, values, gamma, lam):
    """Textbook single-sequence GAE in plain Python floats."""
    adv, next_v, next_a = [0.0] * len(rewards), 0.0, 0.0
    for j in reversed(range(len(rewards))):
        delta = rewards[j] + gamma * next_v - values[j]
        next_a = delta + gamma * lam * next_a
        adv[j], next_v = next_a, values[j]
    return adv


def _random_multiturn_mask(gen, b, t):
    # Alternating policy/env segments of random lengths; some rows end with env tokens.
    mask = torch.zeros(b, t, dtype=torch.bool)
    for i in range(b):
        pos, policy = int(torch.randint(0, 3, (1,), generator=gen)), True
        while pos < t:
            seg = int(torch.randint(1, 5, (1,), generator=gen))
            mask[i, pos : pos + seg] = policy
            pos, policy = pos + seg, not policy
    return mask


@pytest.mark.parametrize("seed", range(5))
def test_gae_equals_gae_on_compacted_policy_tokens(seed):
    gen = torch.Generator().manual_seed(seed)
    b, t = int(torch.randint(1, 6, (1,), generator=gen)), int(torch.randint(1, 30, (1,), generator=gen))
    mask = _random_multiturn_mask(gen, b, t)
    values = torch.randn(b, t, generator=gen, dtype=F64)
    token_rewards = torch.randn(b, t, generator=gen, dtype=F64)
    rewards = torch.randn(b, generator=gen, dtype=F64)
    gamma, lam = 0.97, 0.9
    out = run("gae", AdvantageInputs(rewards, mask, values=values, token_rewards=token_rewards),
              gamma=gamma, lam=lam, normalize=False)
    for i in range(b):
        idx = mask[i].nonzero().squeeze(-1).tolist()
        r = [token_rewards[i, j].item() for j in idx]
        if idx:
            r[-1] += rewards[i].item()  # the outcome is credited to the last policy token
        ref = _gae_reference(r, [values[i, j].item() for j in idx], gamma, lam)
        expected = torch.zeros(t, dtype=F64)
        expected[idx] = t64(ref) if idx else expected[idx]
        torch.testing.assert_close(out.advantages[i], expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_gae_ignores_values_and_rewards_on_masked_tokens(seed):
    gen = torch.Generator().manual_seed(100 + seed)
    b, t = 4, 25
    mask = _random_multiturn_mask(gen, b, t)
    values = torch.randn(b, t, generator=gen, dtype=F64)
    token_rewards = torch.randn(b, t, generator=gen, dtype=F64)
    rewards = torch.randn(b, generator=gen, dtype=F64)
    base = run("gae", AdvantageInputs(rewards, mask, values=values, token_rewards=token_rewards))
    noise_v = torch.where(mask, values, 100 * torch.randn(b, t, generator=gen, dtype=F64))
    noise_r = torch.where(mask, token_rewards, 100 * torch.randn(b, t, generator=gen, dtype=F64))
    other = run("gae", AdvantageInputs(rewards, mask, values=noise_v, token_rewards=noise_r))
    torch.testing.assert_close(base.advantages, other.advantages, rtol=0, atol=0)
    torch.testing.assert_close(base.returns, other.returns, rtol=0, atol=0)
    assert (base.advantages[~mask] == 0).all()


def test_gae_normalize_whitens_over_policy_tokens():
    gen = torch.Generator().manual_seed(7)
    mask = _random_multiturn_mask(gen, 3, 20)
    inputs = AdvantageInputs(torch.randn(3, generator=gen, dtype=F64), mask,
                             values=torch.randn(3, 20, generator=gen, dtype=F64))
    adv = run("gae", inputs).advantages
    # Whitening: masked mean 0 and (Bessel) variance 1 up to the 1e-8 epsilon.
    assert abs(masked_mean(adv, mask).item()) < 1e-12
    assert abs(masked_var(adv, mask).item() - 1.0) < 1e-6


def test_gae_requires_values():
    inputs = AdvantageInputs(t64([1.0]), torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="values"):
        ADVANTAGE_ESTIMATORS.get("gae")(inputs)


# ---------------------------------------------------------------------------- group estimators


def _one_group(rewards, t=3):
    b = len(rewards)
    return AdvantageInputs(t64(rewards), torch.ones(b, t, dtype=torch.bool), group_index=torch.zeros(b, dtype=torch.long))


def test_grpo_hand_values():
    # Rewards [1, 0, 0, 1]: mean 0.5, unbiased std sqrt(4·0.25/3) = 1/sqrt(3),
    # A = ±0.5·sqrt(3) = ±0.8660254037844386 (eps = 1e-12 is negligible).
    out = run("grpo", _one_group([1.0, 0.0, 0.0, 1.0]), eps=1e-12)
    h = 0.5 * math.sqrt(3.0)
    torch.testing.assert_close(out.advantages, t64([[h] * 3, [-h] * 3, [-h] * 3, [h] * 3]), rtol=0, atol=1e-9)
    # Population std = 0.5 gives A = ±1.
    out = run("grpo", _one_group([1.0, 0.0, 0.0, 1.0]), eps=1e-12, unbiased_std=False)
    torch.testing.assert_close(out.advantages[:, 0], t64([1.0, -1.0, -1.0, 1.0]), rtol=0, atol=1e-9)


def test_dr_grpo_hand_values():
    # Mean-centering only: [1, 0, 0, 1] − 0.5 = [0.5, −0.5, −0.5, 0.5].
    out = run("dr_grpo", _one_group([1.0, 0.0, 0.0, 1.0]))
    torch.testing.assert_close(out.advantages[:, 0], t64([0.5, -0.5, -0.5, 0.5]), **TOL)


def test_rloo_hand_values():
    # r = 1: baseline (0 + 0 + 1)/3 = 1/3 -> A = 2/3; r = 0: baseline 2/3 -> A = −2/3.
    out = run("rloo", _one_group([1.0, 0.0, 0.0, 1.0]))
    torch.testing.assert_close(out.advantages[:, 0], t64([2 / 3, -2 / 3, -2 / 3, 2 / 3]), **TOL)


def test_opo_hand_values():
    # Lengths 1 and 3, rewards 1 and 0: b* = (1·1 + 3·0)/(1 + 3) = 0.25 -> A = [0.75, −0.25].
    mask = torch.tensor([[1, 0, 0], [1, 1, 1]], dtype=torch.bool)
    out = run("opo", AdvantageInputs(t64([1.0, 0.0]), mask, group_index=torch.tensor([3, 3])))
    torch.testing.assert_close(out.advantages, t64([[0.75, 0, 0], [-0.25, -0.25, -0.25]]), **TOL)


def test_reinforce_and_reinforce_pp_hand_values():
    # Two samples of 2 policy tokens, outcome rewards [1, 0], γ = 0.5:
    # returns-to-go: sample 0 -> [0.5, 1.0], sample 1 -> [0, 0].
    inputs = AdvantageInputs(t64([1.0, 0.0]), torch.ones(2, 2, dtype=torch.bool))
    out = run("reinforce", inputs, gamma=0.5)
    torch.testing.assert_close(out.advantages, t64([[0.5, 1.0], [0.0, 0.0]]), **TOL)
    # REINFORCE++ whitens the 4 returns: mean 0.375, unbiased var = (0.015625 + 0.390625 +
    # 2·0.140625)/3 = 0.229166..., so A = (G − 0.375)/sqrt(0.2291666...).
    out = run("reinforce_pp", inputs, gamma=0.5, eps=1e-12)
    sd = math.sqrt(0.6875 / 3)
    expected = t64([[0.125 / sd, 0.625 / sd], [-0.375 / sd, -0.375 / sd]])
    torch.testing.assert_close(out.advantages, expected, rtol=0, atol=1e-9)


def test_reinforce_pp_baseline_hand_values():
    # Group of 2 with rewards [1, 0]: R' = R − mean = [0.5, −0.5]; one token each, γ = 1,
    # so the shifted returns are [0.5, −0.5]: mean 0, unbiased variance (0.25 + 0.25)/1 = 0.5,
    # whitened A = ±0.5/sqrt(0.5) = ±0.7071067811865476. Returns stay unshifted: [1, 0].
    inputs = AdvantageInputs(t64([1.0, 0.0]), torch.ones(2, 1, dtype=torch.bool), group_index=torch.tensor([0, 0]))
    out = run("reinforce_pp_baseline", inputs, eps=1e-12)
    torch.testing.assert_close(out.advantages[:, 0], t64([0.5, -0.5]) / math.sqrt(0.5), rtol=0, atol=1e-9)
    torch.testing.assert_close(out.returns[:, 0], t64([1.0, 0.0]), **TOL)


def _loop_group_reference(name, scores, lengths, groups, params):
    out = []
    for i in range(len(scores)):
        members = [j for j in range(len(scores)) if groups[j] == groups[i]]
        s = [scores[j] for j in members]
        n = len(s)
        mean = sum(s) / n
        if name in ("grpo", "dr_grpo"):
            a = scores[i] - mean
            if params.norm_by_std:
                var = sum((x - mean) ** 2 for x in s) / (n - 1 if params.unbiased_std and n > 1 else n)
                a /= math.sqrt(var) + params.eps
        elif name == "rloo":
            a = scores[i] - (sum(s) - scores[i]) / (n - 1) if n > 1 else 0.0
        elif name == "opo":
            ls = [lengths[j] for j in members]
            a = scores[i] - sum(l * x for l, x in zip(ls, s)) / max(sum(ls), 1)
        out.append(a)
    return out


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "opo"])
@pytest.mark.parametrize("seed", range(4))
def test_group_estimators_loop_vs_vectorized(name, seed):
    gen = torch.Generator().manual_seed(seed)
    b, t = int(torch.randint(1, 12, (1,), generator=gen)), int(torch.randint(1, 10, (1,), generator=gen))
    groups = torch.randint(0, 4, (b,), generator=gen) * 7  # non-contiguous ids
    mask = _random_multiturn_mask(gen, b, t)
    rewards = torch.randn(b, generator=gen, dtype=F64)
    token_rewards = torch.randn(b, t, generator=gen, dtype=F64)
    inputs = AdvantageInputs(rewards, mask, group_index=groups, token_rewards=token_rewards)
    entry = ADVANTAGE_ESTIMATORS.get(name)
    out = entry(inputs)
    scores = [rewards[i].item() + token_rewards[i][mask[i]].sum().item() for i in range(b)]
    lengths = mask.sum(-1).tolist()
    ref = _loop_group_reference(name, scores, lengths, groups.tolist(), entry.default_params())
    expected = torch.where(mask, t64(ref)[:, None], torch.zeros((), dtype=F64))
    torch.testing.assert_close(out.advantages, expected, rtol=0, atol=1e-10)


GROUP_ESTIMATORS = ["grpo", "dr_grpo", "rloo", "opo", "reinforce_pp_baseline", "grpo_process", "objective_weights"]


def _group_batch(seed, binary=False):
    gen = torch.Generator().manual_seed(seed)
    b, t = 9, 8
    groups = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    mask = _random_multiturn_mask(gen, b, t)
    mask[:, 0] = True
    if binary:
        rewards = (torch.rand(b, generator=gen) > 0.5).to(F64)
        token_rewards = None
        step_mask = None
    else:
        rewards = torch.randn(b, generator=gen, dtype=F64)
        step_mask = mask & (torch.rand(b, t, generator=gen) > 0.5)
        token_rewards = torch.randn(b, t, generator=gen, dtype=F64)
    return AdvantageInputs(rewards, mask, group_index=groups, token_rewards=token_rewards, step_mask=step_mask)


@pytest.mark.parametrize("name", GROUP_ESTIMATORS)
def test_permuting_within_group_permutes_advantages(name):
    inputs = _group_batch(3, binary=name == "objective_weights")
    perm = torch.tensor([2, 0, 1, 4, 5, 3, 6, 8, 7])  # stays within each group of 3
    permuted = AdvantageInputs(
        inputs.rewards[perm], inputs.mask[perm], group_index=inputs.group_index[perm],
        token_rewards=None if inputs.token_rewards is None else inputs.token_rewards[perm],
        step_mask=None if inputs.step_mask is None else inputs.step_mask[perm],
    )
    a = ADVANTAGE_ESTIMATORS.get(name)(inputs)
    b = ADVANTAGE_ESTIMATORS.get(name)(permuted)
    torch.testing.assert_close(b.advantages, a.advantages[perm], rtol=0, atol=1e-12)
    torch.testing.assert_close(b.returns, a.returns[perm], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(set(ADVANTAGE_ESTIMATORS.names()) - {"objective_weights"}))
def test_masked_token_rewards_and_values_change_nothing(name):
    inputs = _group_batch(5)
    gen = torch.Generator().manual_seed(11)
    values = torch.randn(inputs.mask.shape, generator=gen, dtype=F64)
    noise = 50 * torch.randn(inputs.mask.shape, generator=gen, dtype=F64)
    m = inputs.mask
    base = AdvantageInputs(inputs.rewards, m, inputs.group_index, values, inputs.token_rewards, inputs.step_mask)
    other = AdvantageInputs(inputs.rewards, m, inputs.group_index, torch.where(m, values, noise),
                            torch.where(m, inputs.token_rewards, noise), inputs.step_mask)
    a = ADVANTAGE_ESTIMATORS.get(name)(base)
    b = ADVANTAGE_ESTIMATORS.get(name)(other)
    torch.testing.assert_close(a.advantages, b.advantages, rtol=0, atol=0)
    assert (a.advantages[~m] == 0).all() and (a.returns[~m] == 0).all()


def test_group_of_one_has_zero_advantage():
    # A single sample has no peers: GRPO (x − x = 0), RLOO (no leave-one-out baseline) -> 0;
    # OPO's baseline 3·0.7/3 equals 0.7 up to one rounding.
    inputs = _one_group([0.7])
    for name in ("grpo", "dr_grpo", "rloo", "opo"):
        adv = ADVANTAGE_ESTIMATORS.get(name)(inputs).advantages
        torch.testing.assert_close(adv, torch.zeros_like(adv), rtol=0, atol=1e-15)


# ---------------------------------------------------------------------------- process rewards


def test_step_rewards_from_scores_hand_values_and_telescoping():
    # Steps end at tokens 1, 2 and 5 with PRM scores 0.5, 0.7, 0.4; s_0 = 0:
    # r = [0.5 − 0, 0.7 − 0.5, 0.4 − 0.7] = [0.5, 0.2, −0.3] at those tokens; Σ r = 0.4 = s_K.
    scores = t64([[9.0, 0.5, 0.7, 9.0, 9.0, 0.4]])
    steps = torch.tensor([[0, 1, 1, 0, 0, 1]], dtype=torch.bool)
    r = step_rewards_from_scores(scores, steps)
    torch.testing.assert_close(r, t64([[0, 0.5, 0.2, 0, 0, -0.3]]), **TOL)
    gen = torch.Generator().manual_seed(0)
    scores = torch.rand(6, 40, generator=gen, dtype=F64)
    steps = torch.rand(6, 40, generator=gen) > 0.7
    r = step_rewards_from_scores(scores, steps, initial_score=0.25)
    last = torch.where(steps, torch.arange(40), -1).amax(-1)
    expected = torch.where(last >= 0, scores.gather(-1, last.clamp(min=0)[:, None]).squeeze(-1) - 0.25, 0.0)
    torch.testing.assert_close(r.sum(-1), expected, rtol=0, atol=1e-12)


def test_grpo_process_hand_values():
    # Group of 2, outcomes [1, 0] -> GRPO outcome part (unbiased std of [1,0] = sqrt(0.5)):
    # ±0.5/sqrt(0.5) = ±0.70710678.
    # Step rewards: sample 0 steps at tokens 0, 2 with r = 1, 3; sample 1 a step at token 1, r = 2.
    # Group step stats over {1, 3, 2}: mean 2, unbiased std 1 -> r̃ = {−1, 1, 0}.
    # Sample 0 tokens [0, 1, 2]: Σ r̃ at or after t = [−1 + 1, 1, 1] = [0, 1, 1].
    # Sample 1 tokens [0, 1, 2]: [0, 0, 0] (its only step is normalized to 0).
    mask = torch.ones(2, 3, dtype=torch.bool)
    steps = torch.tensor([[1, 0, 1], [0, 1, 0]], dtype=torch.bool)
    token_rewards = t64([[1.0, 0.0, 3.0], [0.0, 2.0, 0.0]])
    inputs = AdvantageInputs(t64([1.0, 0.0]), mask, group_index=torch.tensor([0, 0]),
                             token_rewards=token_rewards, step_mask=steps)
    out = run("grpo_process", inputs, eps=1e-12)
    o = 0.5 / math.sqrt(0.5)
    torch.testing.assert_close(out.advantages, t64([[o, o + 1, o + 1], [-o, -o, -o]]), rtol=0, atol=1e-9)


def test_input_validation_and_params_bounds():
    with pytest.raises(ValueError, match="rewards"):
        AdvantageInputs(t64([1.0, 2.0]), torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="lam"):
        GAEParams(lam=1.5)
    with pytest.raises(ValueError, match="eps"):
        GRPOParams(eps=0.0)
    with pytest.raises(TypeError, match="GRPOParams"):
        ADVANTAGE_ESTIMATORS.get("grpo")(_one_group([1.0, 0.0]), ReinforcePPParams())


@pytest.mark.parametrize("seed", range(3))
def test_undiscounted_returns_fast_path_equals_the_scan(seed):
    # γ = 1 uses a reverse cumulative sum; it must equal the policy-token scan (GAE, V = 0, λ = 1).
    gen = torch.Generator().manual_seed(seed)
    mask = _random_multiturn_mask(gen, 5, 23)
    r = torch.randn(5, 23, generator=gen, dtype=F64)
    torch.testing.assert_close(discounted_returns(r, mask, 1.0), gae_scan(r, torch.zeros_like(r), mask, 1.0, 1.0),
                               rtol=0, atol=1e-12)

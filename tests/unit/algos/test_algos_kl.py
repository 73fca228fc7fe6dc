"""KL estimators (values, exact and Monte Carlo expectations, gradients), placement, controllers."""

from __future__ import annotations

import math

import pytest
import torch

from outrider.learner.algos import KL_CONTROLLERS, KL_ESTIMATORS, KLInputs, UnknownNameError
from outrider.learner.algos.kl import get_kl_placement, kl_loss_term, kl_reward_penalty

F64 = torch.float64


def t64(x):
    return torch.tensor(x, dtype=F64)


def kl(name, logprobs, ref, sampling=None, **params):
    entry = KL_ESTIMATORS.get(name)
    return entry(KLInputs(logprobs, ref, sampling), entry.make_params(**params))


def test_kl_estimators_hand_values():
    # π(y) = 0.5, π_ref(y) = 0.25: ℓ = log 2 = 0.6931471805599453.
    #   k1 = log 2;  k2 = ½ (log 2)² = 0.2402265069591007;
    #   k3 = ρ − 1 − log ρ with ρ = 0.5: −0.5 + log 2 = 0.1931471805599453.
    #   k3_is with π_s(y) = 0.25: weight π/π_s = 2 -> 2·k3 = 0.3862943611198906.
    lp, ref = t64([[math.log(0.5)]]), t64([[math.log(0.25)]])
    assert abs(kl("k1", lp, ref).item() - math.log(2)) < 1e-15
    assert abs(kl("k2", lp, ref).item() - 0.5 * math.log(2) ** 2) < 1e-15
    assert abs(kl("k3", lp, ref).item() - (math.log(2) - 0.5)) < 1e-15
    assert abs(kl("k3_is", lp, ref, sampling=ref).item() - 2 * (math.log(2) - 0.5)) < 1e-15
    # Clamp: k1 = log 2 clipped at 0.5.
    assert kl("k1", lp, ref, clip=0.5).item() == 0.5


def categorical(seed, v=5):
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(v, generator=gen, dtype=F64).requires_grad_()
    ref = torch.log_softmax(torch.randn(v, generator=gen, dtype=F64), -1)
    old = torch.log_softmax(theta.detach() + 0.5 * torch.randn(v, generator=gen, dtype=F64), -1)
    return theta, ref, old


def exact_kl(logp, ref):
    return (logp.exp() * (logp - ref)).sum()


@pytest.mark.parametrize("seed", range(3))
def test_exact_expectations_over_a_categorical(seed):
    # Σ_y π(y) k(y) over the whole support: k1 and k3 are unbiased for KL(π‖π_ref);
    # k3_is is unbiased when y ~ π_old.
    theta, ref, old = categorical(seed)
    logp = torch.log_softmax(theta, -1).detach()
    p, p_old = logp.exp(), old.exp()
    target = exact_kl(logp, ref).item()
    y = logp[None]  # all support points as one "sequence"
    assert abs((p * kl("k1", y, ref[None])[0]).sum().item() - target) < 1e-12
    assert abs((p * kl("k3", y, ref[None])[0]).sum().item() - target) < 1e-12
    assert abs((p_old * kl("k3_is", y, ref[None], old[None])[0]).sum().item() - target) < 1e-12


@pytest.mark.parametrize("seed", range(3))
def test_exact_expected_gradients(seed):
    # E_{y~π}[∇k(y)] with the sampling distribution held fixed, i.e. what a loss term gives:
    #   k2: Σ π ℓ ∇log π = ∇KL(π‖π_ref)           (exactly the true gradient)
    #   k1: Σ π ∇log π = ∇Σ π = 0
    #   k3: Σ π (1 − π_ref/π) ∇log π = −Σ π_ref ∇log π = ∇KL(π_ref‖π)   (the reverse KL)
    #   k3_is with y ~ π_old: Σ π_old ∇[(π/π_old) k3] = ∇Σ π k3 = ∇KL(π‖π_ref)
    theta, ref, old = categorical(seed)

    def expected_grad(name, weights, sampling=None):
        logp = torch.log_softmax(theta, -1)
        k = kl(name, logp[None], ref[None], None if sampling is None else sampling[None])[0]
        (g,) = torch.autograd.grad((weights.detach() * k).sum(), theta)
        return g

    pi = torch.softmax(theta, -1)
    (true_grad,) = torch.autograd.grad(exact_kl(torch.log_softmax(theta, -1), ref), theta)
    (reverse_grad,) = torch.autograd.grad((ref.exp() * (ref - torch.log_softmax(theta, -1))).sum(), theta)
    torch.testing.assert_close(expected_grad("k2", pi), true_grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(expected_grad("k1", pi), torch.zeros(5, dtype=F64), rtol=0, atol=1e-12)
    torch.testing.assert_close(expected_grad("k3", pi), reverse_grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(expected_grad("k3_is", old.exp(), old), true_grad, rtol=0, atol=1e-12)
    # On-policy k3_is (no sampling log-probs) is the unbiased-gradient form e^{ℓ − sg ℓ}·k3.
    torch.testing.assert_close(expected_grad("k3_is", pi), true_grad, rtol=0, atol=1e-12)


def test_monte_carlo_expectations_within_sampling_error():
    # N = 20000 draws; each estimate must be within 5 standard errors (SE = sample std/√N)
    # of its exact expectation: KL for k1, k3 (y ~ π) and k3_is (y ~ π_old); for k2 its own
    # mean Σ π ½ℓ² (k2 is biased for the KL).
    theta, ref, old = categorical(7)
    logp = torch.log_softmax(theta, -1).detach()
    n = 20000
    gen = torch.Generator().manual_seed(123)
    y = torch.multinomial(logp.exp(), n, replacement=True, generator=gen)
    y_old = torch.multinomial(old.exp(), n, replacement=True, generator=gen)
    target = exact_kl(logp, ref).item()
    cases = {
        "k1": (kl("k1", logp[y][None], ref[y][None]), target),
        "k3": (kl("k3", logp[y][None], ref[y][None]), target),
        "k2": (kl("k2", logp[y][None], ref[y][None]), (logp.exp() * 0.5 * (logp - ref) ** 2).sum().item()),
        "k3_is": (kl("k3_is", logp[y_old][None], ref[y_old][None], old[y_old][None]), target),
    }
    for name, (samples, expected) in cases.items():
        se = samples.std().item() / math.sqrt(n)
        assert abs(samples.mean().item() - expected) < 5 * se, name


def test_monte_carlo_k2_gradient_matches_true_kl_gradient():
    # ∇_θ of the sample mean of k2 (autograd) vs ∇KL, per coordinate within 5 SE. The
    # per-sample gradient is ℓ(y)(e_y − π) (softmax score function), used only for the SE.
    theta, ref, _ = categorical(11)
    n = 20000
    with torch.no_grad():
        pi = torch.softmax(theta, -1)
    y = torch.multinomial(pi, n, replacement=True, generator=torch.Generator().manual_seed(5))
    logp = torch.log_softmax(theta, -1)
    (mc_grad,) = torch.autograd.grad(kl("k2", logp[y][None], ref[y][None]).mean(), theta)
    (true_grad,) = torch.autograd.grad(exact_kl(torch.log_softmax(theta, -1), ref), theta)
    with torch.no_grad():
        ell = (logp - ref)[y]
        per_sample = ell[:, None] * (torch.nn.functional.one_hot(y, 5).to(F64) - pi)
        torch.testing.assert_close(per_sample.mean(0), mc_grad, rtol=0, atol=1e-12)
        se = per_sample.std(0) / math.sqrt(n)
    assert ((mc_grad - true_grad).abs() < 5 * se).all()


def test_kl_placement_hooks():
    kl_t = t64([[0.5, 1.0]]).requires_grad_()
    reward, loss, none = (get_kl_placement(n) for n in ("reward", "loss", "none"))
    # reward: −β·KL (detached) in the rewards, nothing in the loss; loss: the opposite.
    torch.testing.assert_close(kl_reward_penalty(kl_t, 0.1, reward), t64([[-0.05, -0.1]]), rtol=0, atol=1e-15)
    assert not kl_reward_penalty(kl_t, 0.1, reward).requires_grad
    assert (kl_loss_term(kl_t, 0.1, reward) == 0).all()
    torch.testing.assert_close(kl_loss_term(kl_t, 0.1, loss), t64([[0.05, 0.1]]), rtol=0, atol=1e-15)
    assert kl_loss_term(kl_t, 0.1, loss).requires_grad
    assert (kl_reward_penalty(kl_t, 0.1, loss) == 0).all()
    assert (kl_reward_penalty(kl_t, 0.1, none) == 0).all() and (kl_loss_term(kl_t, 0.1, none) == 0).all()
    with pytest.raises(UnknownNameError, match="loss, none, reward"):
        get_kl_placement("advantage")


def test_adaptive_kl_controller_hand_values():
    # β_0 = 0.2, target 6, horizon 10000.
    #   KL = 9: e = clip(9/6 − 1, ±0.2) = 0.2; n = 1000: β = 0.2 (1 + 0.2·0.1) = 0.204
    #   KL = 6: e = 0 -> unchanged 0.204
    #   KL = 3: e = clip(−0.5) = −0.2; n = 5000: β = 0.204 (1 − 0.2·0.5) = 0.1836
    entry = KL_CONTROLLERS.get("adaptive")
    ctl = entry.fn(entry.make_params(init_kl_coef=0.2, target_kl=6.0, horizon=10000))
    assert abs(ctl.update(9.0, 1000) - 0.204) < 1e-15
    assert abs(ctl.update(6.0, 1000) - 0.204) < 1e-15
    assert abs(ctl.update(3.0, 5000) - 0.1836) < 1e-15
    fixed = KL_CONTROLLERS.get("fixed")
    f = fixed.fn(fixed.make_params(kl_coef=0.05))
    assert f.update(100.0, 10) == 0.05


@pytest.mark.parametrize("name", ["fixed", "adaptive"])
def test_kl_controller_resume_is_equivalent(name):
    # Run 10 updates straight; separately run 5, save, load into a fresh controller built with
    # a different coefficient (the state must override it), run 5: identical coefficient
    # sequences (exact float equality).
    entry = KL_CONTROLLERS.get(name)
    kls = [3.0, 9.0, 7.5, 1.0, 6.2, 12.0, 0.5, 6.0, 8.0, 2.0]
    straight = entry.fn(entry.default_params())
    full = [straight.update(k, 512) for k in kls]
    first = entry.fn(entry.default_params())
    part = [first.update(k, 512) for k in kls[:5]]
    other = {"fixed": {"kl_coef": 0.9}, "adaptive": {"init_kl_coef": 0.9, "target_kl": 1.0}}[name]
    resumed = entry.fn(entry.make_params(**other))
    resumed.load_state_dict(dict(first.state_dict()))
    part += [resumed.update(k, 512) for k in kls[5:]]
    assert part == full

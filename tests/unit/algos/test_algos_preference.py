"""Preference losses (DPO, IPO, Bradley–Terry) against their closed forms on hand-built log-probs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from outrider.learner.algos import PREFERENCE_LOSSES, PreferenceInputs

F64 = torch.float64


def loss(name: str, inputs: PreferenceInputs, **params):
    entry = PREFERENCE_LOSSES.get(name)
    return entry(inputs, entry.make_params(**params))


def pair(chosen, rejected, ref_chosen=None, ref_rejected=None, grad=False) -> PreferenceInputs:
    t = lambda v: None if v is None else torch.tensor(v, dtype=F64, requires_grad=grad)  # noqa: E731
    return PreferenceInputs(t(chosen), t(rejected), t(ref_chosen), t(ref_rejected))


def test_dpo_closed_form():
    # h = (−5 − (−6)) − (−7 − (−6)) = 1 − (−1) = 2; β h = 0.2;
    # L = −log σ(0.2) = log(1 + e^{−0.2}) = log 1.8187307531 = 0.5981388693.
    x = pair([-5.0, -6.0], [-7.0, -6.0], [-6.0, -6.0], [-6.0, -6.0], grad=True)
    out = loss("dpo", x, beta=0.1)
    assert out.loss[0].item() == pytest.approx(0.5981388693, abs=1e-10)
    # Equal log-ratios: h = 0, L = log 2.
    assert out.loss[1].item() == pytest.approx(math.log(2), abs=1e-15)
    # dL/d chosen = −β σ(−β h) = −0.1 · σ(−0.2) = −0.1 · 0.4501660027; the rejected gets the opposite.
    out.loss.sum().backward()
    assert x.chosen.grad[0].item() == pytest.approx(-0.04501660027, abs=1e-11)
    assert x.rejected.grad[0].item() == pytest.approx(0.04501660027, abs=1e-11)
    assert x.ref_chosen.grad is None and x.ref_rejected.grad is None, "the reference is frozen"
    assert out.metrics["accuracy"].item() == 0.5
    assert out.metrics["reward_margin"].item() == pytest.approx(0.1, abs=1e-15)  # mean of 0.2 and 0


def test_conservative_dpo_closed_form():
    # ε = 0.1: L = 0.9·log(1 + e^{−0.2}) + 0.1·log(1 + e^{0.2})
    #           = 0.9·0.5981388693 + 0.1·0.7981388693 = 0.6181388693.
    out = loss("dpo", pair([-5.0], [-7.0], [-6.0], [-6.0]), beta=0.1, label_smoothing=0.1)
    assert out.loss.item() == pytest.approx(0.6181388693, abs=1e-10)


def test_ipo_closed_form():
    # h = 2 as above. τ = 0.1: target 1/(2τ) = 5, L = (2 − 5)² = 9; τ = 0.25: target 2, L = 0.
    x = pair([-5.0], [-7.0], [-6.0], [-6.0], grad=True)
    out = loss("ipo", x, tau=0.1)
    assert out.loss.item() == pytest.approx(9.0, abs=1e-12)
    out.loss.sum().backward()
    # dL/dh = 2(h − 5) = −6; dh/d chosen = 1.
    assert x.chosen.grad.item() == pytest.approx(-6.0, abs=1e-12)
    assert loss("ipo", pair([-5.0], [-7.0], [-6.0], [-6.0]), tau=0.25).loss.item() == pytest.approx(0.0, abs=1e-12)


def test_bradley_terry_closed_form():
    # r_w − r_l = 1: L = log(1 + e^{−1}) = 0.3132616875; r_w = r_l: log 2.
    out = loss("bradley_terry", pair([1.5, 0.3], [0.5, 0.3]))
    assert out.loss.tolist() == pytest.approx([0.3132616875, math.log(2)], abs=1e-10)
    # Bit-identical to the reward-model trainer's former inline expression.
    chosen, rejected = torch.randn(16, generator=torch.Generator().manual_seed(0)), torch.randn(16)
    moved = loss("bradley_terry", PreferenceInputs(chosen, rejected)).loss.mean()
    assert torch.equal(moved, -F.logsigmoid(chosen - rejected).mean())


@pytest.mark.parametrize("name", ["dpo", "ipo"])
def test_policy_preference_losses_need_the_reference(name):
    with pytest.raises(ValueError, match=rf"preference loss '{name}' needs inputs\.ref_chosen, inputs\.ref_rejected"):
        loss(name, pair([-5.0], [-7.0]))

"""Entropy/log-probs from logits (chunked), covariance statistics, masked helpers."""

from __future__ import annotations

import math

import pytest
import torch

from outrider.learner.algos.masked import (
    group_mean,
    group_std,
    last_token_index,
    masked_mean,
    masked_var,
    masked_whiten,
)
from outrider.learner.algos.metrics import (
    covariance_stats,
    entropy_from_logits,
    logprobs_from_logits,
    token_covariance,
)

F64 = torch.float64


def t64(x):
    return torch.tensor(x, dtype=F64)


def test_entropy_hand_values():
    # Uniform over 7 -> log 7; two-point [log 3, 0] = probabilities [3/4, 1/4] ->
    # H = −(0.75 log 0.75 + 0.25 log 0.25) = 0.5623351446188083.
    assert abs(entropy_from_logits(torch.zeros(1, 7, dtype=F64)).item() - math.log(7)) < 1e-15
    h = entropy_from_logits(t64([[math.log(3.0), 0.0]])).item()
    assert abs(h - 0.5623351446188083) < 1e-15


@pytest.mark.parametrize("chunk", [1, 3, 1000])
@pytest.mark.parametrize("seed", range(2))
def test_chunked_entropy_and_logprobs_match_reference(chunk, seed):
    gen = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(2, 5, 11, generator=gen, dtype=F64)).requires_grad_()
    labels = torch.randint(0, 11, (2, 5), generator=gen)
    h = entropy_from_logits(logits, chunk_size=chunk)
    ref = torch.distributions.Categorical(logits=logits).entropy()
    torch.testing.assert_close(h, ref, rtol=0, atol=1e-12)
    (g,) = torch.autograd.grad(h.sum(), logits)
    (g_ref,) = torch.autograd.grad(ref.sum(), logits)
    torch.testing.assert_close(g, g_ref, rtol=0, atol=1e-12)
    lp = logprobs_from_logits(logits, labels, chunk_size=chunk)
    lp_ref = torch.log_softmax(logits, -1).gather(-1, labels[..., None]).squeeze(-1)
    torch.testing.assert_close(lp, lp_ref, rtol=0, atol=1e-12)


def test_half_precision_logits_are_reduced_in_float32():
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    h = entropy_from_logits(logits, chunk_size=2)
    assert h.dtype == torch.float32
    ref = torch.distributions.Categorical(logits=logits.to(F64)).entropy()
    torch.testing.assert_close(h.to(F64), ref, rtol=0, atol=1e-5)


def test_covariance_hand_values():
    # log π = [−1, −2, −3, −4] (mean −2.5), A = [4, 0, 0, −3] (mean 0.25):
    # Cov = [1.5·3.75, 0.5·(−0.25), (−0.5)·(−0.25), (−1.5)·(−3.25)] = [5.625, −0.125, 0.125, 4.875]
    # mean 10.5/4 = 2.625, max 5.625, min −0.125. A masked 5th token is ignored.
    lp = t64([[-1.0, -2.0, -3.0, -4.0, 50.0]])
    adv = t64([[4.0, 0.0, 0.0, -3.0, 50.0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]], dtype=torch.bool)
    torch.testing.assert_close(token_covariance(lp, adv, mask), t64([[5.625, -0.125, 0.125, 4.875, 0.0]]),
                               rtol=0, atol=1e-15)
    stats = covariance_stats(lp, adv, mask)
    assert stats["cov_mean"].item() == 2.625
    assert stats["cov_max"].item() == 5.625 and stats["cov_min"].item() == -0.125


def test_masked_helpers_hand_values():
    # Selected [1, 2, 3, 6]: mean 3, unbiased var (4 + 1 + 0 + 9)/3 = 14/3, biased 14/4.
    x = t64([[1.0, 2.0, float("nan")], [3.0, 6.0, float("inf")]])
    m = torch.tensor([[1, 1, 0], [1, 1, 0]], dtype=torch.bool)
    assert masked_mean(x, m).item() == 3.0
    assert abs(masked_var(x, m).item() - 14 / 3) < 1e-15
    assert abs(masked_var(x, m, unbiased=False).item() - 3.5) < 1e-15
    torch.testing.assert_close(masked_mean(x, m, dim=-1), t64([1.5, 4.5]), rtol=0, atol=0)
    w = masked_whiten(x, m, eps=0.0)
    torch.testing.assert_close(w, t64([[-2.0, -1.0, 0.0], [0.0, 3.0, 0.0]]) / math.sqrt(14 / 3), rtol=0, atol=1e-15)
    # An empty selection gives 0, not NaN.
    assert masked_mean(x, torch.zeros_like(m)).item() == 0.0


def test_group_statistics_and_last_token():
    # Groups {a: [1, 3], b: [5]}: means 2, 2, 5; unbiased std sqrt(2), sqrt(2), 0 (a group of one).
    x = t64([1.0, 5.0, 3.0])
    g = torch.tensor([10, 42, 10])
    torch.testing.assert_close(group_mean(x, g), t64([2.0, 5.0, 2.0]), rtol=0, atol=0)
    torch.testing.assert_close(group_std(x, g), t64([math.sqrt(2), 0.0, math.sqrt(2)]), rtol=0, atol=1e-15)
    mask = torch.tensor([[1, 1, 0, 1, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    assert last_token_index(mask).tolist() == [3, 0, 0]


def test_logprobs_and_entropy_in_one_pass_equal_log_softmax():
    from outrider.learner.algos import logprobs_and_entropy

    # Two positions over a 3-token vocabulary, by hand: z = (0, 0, 0) gives log π = −ln 3 and
    # H = ln 3; z = (ln 1, ln 2, ln 1) gives π = (1/4, 1/2, 1/4), H = 1.5 ln 2.
    logits = torch.tensor([[0.0, 0.0, 0.0], [0.0, math.log(2.0), 0.0]], dtype=torch.float64)
    labels = torch.tensor([2, 1])
    picked, entropy = logprobs_and_entropy(logits, labels)
    torch.testing.assert_close(picked, torch.tensor([-math.log(3.0), math.log(0.5)], dtype=torch.float64))
    torch.testing.assert_close(entropy, torch.tensor([math.log(3.0), 1.5 * math.log(2.0)], dtype=torch.float64))

    # Random logits, chunked (chunk 3 over 7 rows), against torch.log_softmax; gradients too.
    torch.manual_seed(0)
    z = torch.randn(7, 11, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 11, (7,))
    picked, entropy = logprobs_and_entropy(z, y, entropy_grad=True, chunk_size=3)
    log_p = torch.log_softmax(z, -1)
    want_picked, want_entropy = log_p.gather(-1, y[:, None])[:, 0], -(log_p.exp() * log_p).sum(-1)
    torch.testing.assert_close(picked, want_picked, rtol=0, atol=1e-12)
    torch.testing.assert_close(entropy, want_entropy, rtol=0, atol=1e-12)
    (g_got,) = torch.autograd.grad((picked + entropy).sum(), z)
    (g_want,) = torch.autograd.grad((want_picked + want_entropy).sum(), z)
    torch.testing.assert_close(g_got, g_want, rtol=0, atol=1e-12)

    # entropy_grad=False: the entropy is detached, the log-probs are not.
    picked, entropy = logprobs_and_entropy(z, y, entropy_grad=False, chunk_size=3)
    assert picked.requires_grad and not entropy.requires_grad
    torch.testing.assert_close(entropy, want_entropy.detach(), rtol=0, atol=1e-12)

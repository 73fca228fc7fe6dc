"""Sampling and stop helpers of the HF backend, against hand-derived values."""

from __future__ import annotations

import pytest
import torch

from outrider.services.policy.sampling import filter_logits, find_stop, sample_tokens, stable_text


def pytest_approx(values):
    return pytest.approx(values, abs=1e-6)


def probs_after(logits, top_k, top_p):
    filtered = filter_logits(torch.tensor([logits]).log(), torch.tensor([top_k]), torch.tensor([top_p]))
    return torch.softmax(filtered, -1)[0].tolist()


def test_top_p_keeps_the_smallest_prefix_reaching_the_mass():
    # p = [.5, .3, .2]: mass before token 1 is .5 < .6, before token 2 is .8 >= .6 -> keep {0, 1},
    # renormalized to [.5/.8, .3/.8, 0] = [.625, .375, 0]
    assert probs_after([0.5, 0.3, 0.2], 0, 0.6) == pytest_approx([0.625, 0.375, 0.0])
    # top_p = .5: mass before token 1 is exactly .5 -> token 1 dropped, only the argmax remains
    assert probs_after([0.5, 0.3, 0.2], 0, 0.5) == pytest_approx([1.0, 0.0, 0.0])
    assert probs_after([0.5, 0.3, 0.2], 0, 1.0) == pytest_approx([0.5, 0.3, 0.2])


def test_top_k_then_top_p_on_the_renormalized_rest():
    # top-2 of [.1, .4, .2, .3] keeps {1, 3} -> [0, .4/.7, 0, .3/.7] = [0, .5714, 0, .4286]
    assert probs_after([0.1, 0.4, 0.2, 0.3], 2, 1.0) == pytest_approx([0.0, 4 / 7, 0.0, 3 / 7])
    # then top_p .5 on that: mass before token 3 is .5714 >= .5 -> only token 1
    assert probs_after([0.1, 0.4, 0.2, 0.3], 2, 0.5) == pytest_approx([0.0, 1.0, 0.0, 0.0])


def test_rows_use_their_own_parameters():
    logits = torch.tensor([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]).log()
    filtered = filter_logits(logits, torch.tensor([1, 0]), torch.tensor([1.0, 1.0]))
    assert torch.isinf(filtered[0, 1:]).all() and torch.isfinite(filtered[1]).all()


def test_greedy_rows_take_the_argmax_and_seeded_rows_replay():
    logits = torch.tensor([[0.0, 3.0, 1.0]] * 3)
    temperature = torch.tensor([0.0, 1.0, 1.0])
    k, p = torch.zeros(3, dtype=torch.long), torch.ones(3)

    def draw(seed):
        generators = [torch.Generator().manual_seed(seed + i) for i in range(3)]
        return [sample_tokens(logits, temperature, k, p, generators).tolist() for _ in range(50)]

    first = draw(7)
    assert all(tokens[0] == 1 for tokens in first)
    assert first == draw(7)
    sampled = {tokens[1] for tokens in first} | {tokens[2] for tokens in first}
    # p = softmax([0, 3, 1]) = [.042, .844, .114]: the seeded draws reach every token
    assert sampled == {0, 1, 2}


def test_draws_follow_the_distribution():
    # p = [.1, 0, .6, .3]; 8,000 seeded draws: frequencies within 0.02 (sigma <= sqrt(.25/8000) = 0.0056)
    logits = torch.tensor([[0.1, 0.0, 0.6, 0.3]]).log()
    generator = [torch.Generator().manual_seed(0)]
    one = torch.tensor([1.0])
    counts = torch.zeros(4)
    for _ in range(8000):
        counts[sample_tokens(logits, one, torch.tensor([0]), one, generator)[0]] += 1
    frequencies = (counts / 8000).tolist()
    assert frequencies[1] == 0.0  # a zero-probability token is never drawn
    assert frequencies == pytest.approx([0.1, 0.0, 0.6, 0.3], abs=0.02)


def test_low_temperature_concentrates_on_the_argmax():
    logits = torch.tensor([[0.0, 1.0]])
    generators = [torch.Generator().manual_seed(0)]
    # T = 0.01: p(0) = 1 / (1 + e^100), effectively 0
    draws = [sample_tokens(logits, torch.tensor([0.01]), torch.tensor([0]), torch.tensor([1.0]), generators).item() for _ in range(20)]
    assert draws == [1] * 20


def test_find_stop_reports_the_earliest_new_match():
    assert find_stop("hello world", 0, ("wor", "lo")) == (3, "lo")
    # "lo" ends at 5 <= searched_up_to = 6: already seen, not reported again
    assert find_stop("hello world", 6, ("lo",)) is None
    # a match straddling the boundary counts: "o w" starts at 4 and ends after 6
    assert find_stop("hello world", 6, ("o w",)) == (4, "o w")
    assert find_stop("abc", 0, ()) is None


def test_stable_text_holds_back_incomplete_utf8():
    assert stable_text("caf\ufffd") == "caf"
    assert stable_text("café") == "café"

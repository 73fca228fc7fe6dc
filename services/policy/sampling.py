"""Pure sampling and stopping helpers of the HF backend (vLLM has its own, equivalent ones).

Shapes: B rows (sequences), V vocabulary entries.
"""

from __future__ import annotations

import torch

# The truncation rule is shared with the learner, which recomputes the same support.
from outrider.learner.algos.sampling_support import filter_logits

__all__ = ["filter_logits", "find_stop", "sample_tokens", "stable_text"]


def sample_tokens(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_k: torch.Tensor,
    top_p: torch.Tensor,
    generators: list[torch.Generator],
) -> torch.Tensor:
    """Next token of each row: argmax where temperature == 0, else a draw from
    softmax(logits / T) restricted to top-k/top-p, using the row's own generator
    (so a seeded row replays whatever else shares its batch). Returns (B,) long.

    Inverse-CDF sampling: with u ~ U[0, 1) from the row's generator, the token is the
    first j with sum_{i<=j} p_i >= (1 - u) * sum_i p_i. One random number per row
    (torch.multinomial draws one per vocabulary entry: ~10x slower here); float64
    sums keep the CDF exact to ~1e-16, and tokens with p_j = 0 are never chosen."""
    tokens = logits.argmax(dim=-1)
    sampled_rows = (temperature > 0).nonzero().flatten().tolist()
    if not sampled_rows:
        return tokens
    index = torch.tensor(sampled_rows, device=logits.device)
    scaled = logits[index] / temperature[index].unsqueeze(-1)
    if bool((top_k[index] > 0).any()) or bool((top_p[index] < 1).any()):
        scaled = filter_logits(scaled, top_k[index], top_p[index])
    cdf = torch.softmax(scaled, dim=-1).to(torch.float64).cumsum(dim=-1)
    uniform = torch.stack([
        torch.rand((), generator=generators[row], dtype=torch.float64, device=generators[row].device)
        for row in sampled_rows
    ]).to(logits.device)
    targets = ((1 - uniform) * cdf[:, -1]).unsqueeze(-1)
    tokens[index] = torch.searchsorted(cdf, targets).squeeze(-1).clamp_(max=logits.shape[-1] - 1)
    return tokens


def find_stop(text: str, searched_up_to: int, stops: tuple[str, ...]) -> tuple[int, str] | None:
    """The earliest stop string in `text` that ends after `searched_up_to` characters.

    Returns (index where it starts, the stop string) or None. Text before
    `searched_up_to` was searched already, so only matches reaching past it count.
    """
    best: tuple[int, str] | None = None
    for stop in stops:
        start = max(0, searched_up_to - len(stop) + 1)
        index = text.find(stop, start)
        if index >= 0 and (best is None or index < best[0]):
            best = (index, stop)
    return best


def stable_text(text: str) -> str:
    """Text safe to emit now: a trailing U+FFFD is an incomplete UTF-8 sequence that the
    next token may complete, so it is held back."""
    return text.rstrip("\ufffd")

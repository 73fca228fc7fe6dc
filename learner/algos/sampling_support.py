"""The sampler's truncated support (top-k, top-p), one rule for the policy service and the learner.

A rollout sampled with top-k / top-p draws y_t from the renormalised truncation of the
model's distribution, not from the full softmax. The learner's log-probabilities (and
entropies) must be taken over the same support S_t, or the importance ratio
π_θ(y)/π_old(y) compares a truncated sampler with an untruncated trainer ("keep
sampling mask"). The trajectory records the truncation parameters of each turn
(`Trajectory.turns[i].sampling`), and the learner recomputes S_t from its own logits with
:func:`filter_logits`, the function the HF sampler draws with (a V-wide mask per token
would not fit on the wire; three numbers per turn do).

Convention (the one `Completion.logprobs` follows): the support is chosen as the sampler
chooses it, on softmax(z / T) (top-p depends on T, top-k does not), and log-probabilities
are of the untempered logits z renormalised over it:

    log π_S(y) = z_y − log Σ_{i ∈ S} exp z_i,      H_S = −Σ_{i∈S} π_S(i) log π_S(i)

A turn sampled greedily (T = 0) or without truncation (top_k = 0, top_p = 1) keeps the
whole vocabulary. Shapes: N rows (positions), V vocabulary entries.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["filter_logits", "keep_mask", "truncates", "truncated_entropy", "truncated_logprobs"]


def filter_logits(logits: Tensor, top_k: Tensor, top_p: Tensor) -> Tensor:
    """Mask everything outside each row's top-k and nucleus (top-p) set with -inf.

    logits: (N, V) float, already divided by the temperature.
    top_k: (N,) long, 0 keeps all. top_p: (N,) float in (0, 1].
    Nucleus: keep the smallest prefix of tokens sorted by probability whose mass
    reaches top_p, i.e. drop token j when the mass before it, sum_{i<j} p_i, is
    already >= top_p (the most likely token is always kept).
    """
    vocab = logits.shape[-1]
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    ranks = torch.arange(vocab, device=logits.device).expand_as(sorted_logits)
    k = torch.where(top_k > 0, top_k, torch.full_like(top_k, vocab)).unsqueeze(-1)
    drop = ranks >= k
    probs = torch.softmax(sorted_logits.masked_fill(drop, float("-inf")), dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs
    drop |= (mass_before >= top_p.unsqueeze(-1)) & (ranks > 0)
    filtered = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.empty_like(logits).scatter_(-1, order, filtered)


def truncates(temperature: Tensor, top_k: Tensor, top_p: Tensor) -> Tensor:
    """Which rows sample from a truncated support: T > 0 and (top_k > 0 or top_p < 1). Shape: (N,)."""
    return (temperature > 0) & ((top_k > 0) | (top_p < 1))


def keep_mask(logits: Tensor, temperature: Tensor, top_k: Tensor, top_p: Tensor) -> Tensor:
    """True on the tokens the sampler could draw at each row (all of them where it does not
    truncate). logits (N, V) untempered; temperature, top_p (N,) float; top_k (N,) long.
    Shape: (N, V) bool."""
    keep = torch.ones_like(logits, dtype=torch.bool)
    rows = truncates(temperature, top_k, top_p).nonzero().flatten()
    if rows.numel():
        scaled = logits[rows].float() / temperature[rows].float().unsqueeze(-1)
        keep[rows] = filter_logits(scaled, top_k[rows].long(), top_p[rows].float()) > float("-inf")
    return keep


def _wide(logits: Tensor) -> Tensor:
    """Half-precision logits reduce in float32; float32/float64 stay as they are."""
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


def truncated_logprobs(logits: Tensor, labels: Tensor, keep: Tensor) -> Tensor:
    """log π_S(label) = z_label − logsumexp_{S} z (float32 or wider); −inf for a label outside S.
    logits (N, V), labels (N,) long, keep (N, V) bool. Shape: (N,)."""
    masked = _wide(logits).masked_fill(~keep, float("-inf"))
    return masked.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(masked, dim=-1)


def truncated_entropy(logits: Tensor, keep: Tensor) -> Tensor:
    """H_S = −Σ_{i∈S} π_S(i) log π_S(i), 0-terms outside S. logits (N, V), keep (N, V). Shape: (N,)."""
    logp = torch.log_softmax(_wide(logits).masked_fill(~keep, float("-inf")), dim=-1)
    return -(logp.exp() * logp.masked_fill(~keep, 0.0)).sum(-1)

"""Unbiased pass@k (Chen et al. 2107.03374, "Evaluating Large Language Models Trained on Code").

With n samples of which c are correct, the probability that a uniformly random subset of
k samples contains at least one correct one is

    pass@k = 1 − C(n − c, k) / C(n, k) = 1 − Π_{i=n−c+1}^{n} (1 − k/i),

an unbiased estimate of the probability that k fresh samples contain a correct answer.
The binomials overflow float64 for n ≳ 1030; the product form stays in [0, 1] and is
accumulated in log space (a sum of log1p terms), so it is stable for any n.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["pass_at_k", "pass_at_k_curve"]


def pass_at_k(num_samples: Tensor, num_correct: Tensor, k: int) -> Tensor:
    """Unbiased pass@k per problem.

    Requires 1 ≤ k ≤ n and 0 ≤ c ≤ n for every problem. When n − c < k every subset of
    size k contains a correct sample and pass@k = 1.
    Shape: num_samples, num_correct (P,) integer -> (P,) float64.
    """
    n = torch.as_tensor(num_samples, dtype=torch.long).cpu()
    c = torch.as_tensor(num_correct, dtype=torch.long).cpu()
    if n.shape != c.shape:
        raise ValueError("num_samples and num_correct must have the same shape")
    if k < 1 or bool((k > n).any()):
        raise ValueError(f"need 1 <= k <= n for every problem, got k={k}")
    if bool(((c < 0) | (c > n)).any()):
        raise ValueError("need 0 <= num_correct <= num_samples")
    if n.numel() == 0:
        return torch.zeros(0, dtype=torch.float64)
    n_max = int(n.max())
    # L[m] = Σ_{i=k+1}^{m} log(1 − k/i) for m ≥ k (L[m] = 0 for m ≤ k); then
    # log Π_{i=n−c+1}^{n} (1 − k/i) = L[n] − L[n−c] whenever n − c ≥ k.
    i = torch.arange(n_max + 1, dtype=torch.float64)
    terms = torch.where(i > k, torch.log1p(-k / i.clamp(min=1)), torch.zeros_like(i))
    cum = terms.cumsum(0)
    log_fail = cum[n] - cum[(n - c).clamp(min=0)]
    out = -torch.expm1(log_fail)  # 1 − e^{x}, accurate when the product is close to 1
    return torch.where(n - c < k, torch.ones_like(out), out)


def pass_at_k_curve(num_samples: Tensor, num_correct: Tensor, ks: list[int]) -> Tensor:
    """Mean pass@k over problems for each k.  Shape: (P,), (P,) -> (len(ks),) float64."""
    return torch.stack([pass_at_k(num_samples, num_correct, k).mean() for k in ks])

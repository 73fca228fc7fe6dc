"""Confidence intervals over seeds: the mean ± a Student-t interval.

An arm's seeds are n independent runs; for a number x_1..x_n they measured (a final
reward, a pass@k), the report gives

    mean  x̄ = (1/n) Σ x_i
    s     = sqrt( Σ (x_i − x̄)² / (n − 1) )          (sample standard deviation)
    half  = t_{(1+c)/2, n−1} · s / √n                 (c = 0.95 by default)

and the interval [x̄ − half, x̄ + half]: the t-interval of the mean, exact when the x_i are
normal and the usual choice at the handful of seeds an RL experiment affords. With one
seed there is no interval (half is None), and the report says so rather than print ±0.

No scipy here: the t quantile is the inverse of the Student-t CDF, written with the
regularised incomplete beta function (continued fraction, Numerical Recipes §6.4) and
found by bisection. It is exact to ~1e-10, checked in tests against the closed forms at
1 and 2 degrees of freedom (t = tan(π(p − ½)) and t = (2p − 1)/sqrt(2p(1 − p))).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

CONFIDENCE = 0.95


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz), converging for x < (a+1)/(a+b+2)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        for numerator in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) = B(x; a, b) / B(a, b) for a, b > 0 and 0 ≤ x ≤ 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: int) -> float:
    """P(T ≤ t) for Student's t with `df` degrees of freedom: 1 − ½ I_{df/(df+t²)}(df/2, ½) for t ≥ 0."""
    tail = 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: int) -> float:
    """The t with P(T ≤ t) = p (0 < p < 1), by bisection on :func:`t_cdf`."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p={p} is not in (0, 1)")
    if df < 1:
        raise ValueError(f"df={df}: a t quantile needs at least 1 degree of freedom")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Interval:
    """The mean of n seeds' values and its t-interval (half and bounds None when n = 1)."""

    n: int
    mean: float
    std: float | None
    half: float | None
    low: float | None
    high: float | None
    confidence: float

    def as_dict(self) -> dict:
        return asdict(self)

    def text(self, digits: int = 3) -> str:
        if self.half is None:
            return f"{self.mean:.{digits}f} (n=1, no interval)"
        return f"{self.mean:.{digits}f} ± {self.half:.{digits}f} (n={self.n})"


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """x̄ ± t_{(1+c)/2, n−1} · s/√n over the seeds' `values` (module docstring)."""
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("no values: an interval needs at least one seed's measurement")
    if any(not math.isfinite(x) for x in xs):
        raise ValueError(f"non-finite value among {xs}")
    n = len(xs)
    mean = sum(xs) / n
    if n == 1:
        return Interval(1, mean, None, None, None, None, confidence)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile((1.0 + confidence) / 2.0, n - 1) * std / math.sqrt(n)
    return Interval(n, mean, std, half, mean - half, mean + half, confidence)

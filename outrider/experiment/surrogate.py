"""surrogate-toy: exploration dies by gradient, on a one-dimensional objective with two optima.

The policy is a Gaussian N(μ, σ²) over x; the reward f is a sum of Gaussian bumps,
one low and narrow-ish (the local optimum), one high (the global one). The objective
and its gradient have closed forms (derived by hand; docs/research.md):

    f(x)   = Σ_j a_j exp(−(x − c_j)² / (2 w_j²))
    J(μ,σ) = E_{x∼N(μ,σ²)}[f(x)] = Σ_j g_j,   g_j = a_j · w_j/√v_j · exp(−d_j²/(2 v_j)),
             v_j = w_j² + σ²,  d_j = μ − c_j
    ∂J/∂μ  = Σ_j g_j · (−d_j / v_j)
    ∂J/∂σ  = Σ_j g_j · σ (d_j² − v_j) / v_j²

(the convolution of two Gaussians; ∂/∂v log g = −1/(2v) + d²/(2v²) and ∂v/∂σ = 2σ). At
the centre of a bump far from the others, d = 0 and ∂J/∂σ ≈ −g σ/v < 0: the gradient
shrinks σ, the samples stop reaching the other bump, and exploration dies there.

The learner does not know these forms: it follows the log-derivative (REINFORCE)
estimate from N samples,

    ∂J/∂μ ≈ (1/N) Σ_i f(x_i) (x_i − μ)/σ²,   ∂J/∂σ ≈ (1/N) Σ_i f(x_i) ((x_i − μ)² − σ²)/σ³,

whose standard error is the sample standard deviation of the summands over √N. An
entropy bonus β·H, H = ½ log(2πe σ²), adds β/σ to ∂/∂σ. Runs subtract a leave-one-out
baseline from f (unbiased: each sample's baseline is independent of it) and take
natural-gradient steps on (μ, log σ), whose Fisher information is diag(1/σ², 2):

    Δμ = lr · σ² ĝ_μ,     Δlog σ = lr · ½ σ ĝ_σ

(the step of natural evolution strategies; log σ keeps σ positive). With the bonus,
Δlog σ gains lr·β/2, a constant push outward that the objective's pull −½σ ∂J/∂σ must
balance. A run ends "in the local optimum" when its final μ is nearer the local bump's
centre than the global one's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydantic import Field, model_validator

from outrider.config import ConfigModel


class Bump(ConfigModel):
    height: float = Field(..., gt=0.0)
    """a: the bump's value at its centre."""
    center: float
    """c: where it peaks."""
    width: float = Field(..., gt=0.0)
    """w: its standard deviation."""


class SurrogateConfig(ConfigModel):
    local: Bump = Bump(height=0.5, center=0.0, width=0.5)
    """The lower optimum, where runs start."""
    global_: Bump = Field(Bump(height=1.0, center=3.0, width=0.5), alias="global")
    """The higher optimum."""
    mu0: float = 0.0
    """Initial μ of every run (at the local optimum: can it get out?)."""
    sigma0_grid: list[float] = Field(default_factory=lambda: [0.1, 0.25, 0.5, 0.75, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0], min_length=1)
    """Initial σ values of the sweep."""
    entropy_coefs: list[float] = Field(default_factory=lambda: [0.0, 0.05, 0.1, 0.15], min_length=1)
    """Entropy-bonus coefficients β compared (0: none)."""
    runs: int = Field(200, ge=1, le=100_000)
    """Independent runs per (σ0, β)."""
    steps: int = Field(400, ge=1, le=100_000)
    """Gradient steps per run."""
    samples: int = Field(16, ge=2, le=100_000)
    """Samples x per gradient estimate."""
    lr: float = Field(0.5, gt=0.0)
    """Natural-gradient step size on (μ, log σ)."""
    min_sigma: float = Field(1e-3, gt=0.0)
    """σ is kept above this (log σ clamped), so a collapsed run stays finite."""
    max_sigma: float = Field(20.0, gt=0.0)
    """... and below this (with a bonus, σ can otherwise grow without bound)."""
    check_points: list[tuple[float, float]] = Field(
        default_factory=lambda: [(0.0, 0.3), (0.0, 1.0), (1.5, 1.0), (2.5, 0.5), (3.0, 2.0)], min_length=1
    )
    """(μ, σ) where the Monte-Carlo gradient is compared with the closed form."""
    check_samples: int = Field(200_000, ge=100)
    """Samples of that comparison."""
    seed: int = Field(0, ge=0)
    """Seed of every random draw."""

    model_config = {**ConfigModel.model_config, "populate_by_name": True}

    @model_validator(mode="after")
    def _sigmas(self) -> SurrogateConfig:
        if any(s <= 0 for s in self.sigma0_grid):
            raise ValueError("sigma0_grid: every initial σ must be > 0")
        if any(b < 0 for b in self.entropy_coefs):
            raise ValueError("entropy_coefs: β must be ≥ 0")
        if self.min_sigma >= self.max_sigma:
            raise ValueError("min_sigma must be below max_sigma")
        return self

    def bumps(self) -> list[Bump]:
        return [self.local, self.global_]


def reward(x: np.ndarray, bumps: list[Bump]) -> np.ndarray:
    """f(x) = Σ_j a_j exp(−(x − c_j)²/(2 w_j²))."""
    return sum(b.height * np.exp(-((x - b.center) ** 2) / (2 * b.width**2)) for b in bumps)


def objective(mu, sigma, bumps: list[Bump]):
    """J(μ, σ) in closed form (module docstring); broadcasts over arrays."""
    total = 0.0
    for b in bumps:
        v = b.width**2 + np.square(sigma)
        total = total + b.height * b.width / np.sqrt(v) * np.exp(-np.square(mu - b.center) / (2 * v))
    return total


def gradient(mu, sigma, bumps: list[Bump]):
    """(∂J/∂μ, ∂J/∂σ) in closed form (module docstring)."""
    d_mu, d_sigma = 0.0, 0.0
    for b in bumps:
        v = b.width**2 + np.square(sigma)
        d = mu - b.center
        g = b.height * b.width / np.sqrt(v) * np.exp(-np.square(d) / (2 * v))
        d_mu = d_mu + g * (-d / v)
        d_sigma = d_sigma + g * sigma * (np.square(d) - v) / np.square(v)
    return d_mu, d_sigma


@dataclass(frozen=True)
class MCGradient:
    d_mu: float
    d_sigma: float
    se_mu: float
    se_sigma: float
    samples: int


def mc_gradient(mu: float, sigma: float, bumps: list[Bump], samples: int, rng: np.random.Generator) -> MCGradient:
    """The log-derivative estimate of (∂J/∂μ, ∂J/∂σ) and its standard errors (module docstring)."""
    x = rng.normal(mu, sigma, size=samples)
    f = reward(x, bumps)
    term_mu = f * (x - mu) / sigma**2
    term_sigma = f * ((x - mu) ** 2 - sigma**2) / sigma**3
    root = math.sqrt(samples)
    return MCGradient(
        float(term_mu.mean()), float(term_sigma.mean()),
        float(term_mu.std(ddof=1) / root), float(term_sigma.std(ddof=1) / root), samples,
    )


def ascend(cfg: SurrogateConfig, sigma0: float, entropy_coef: float, rng: np.random.Generator) -> dict:
    """`cfg.runs` independent runs from (μ0, σ0), vectorised: the final μ, σ of each and one run's path."""
    bumps = cfg.bumps()
    mu = np.full(cfg.runs, cfg.mu0, dtype=np.float64)
    log_sigma = np.full(cfg.runs, math.log(sigma0))
    lo, hi = math.log(cfg.min_sigma), math.log(cfg.max_sigma)
    path = [(float(mu[0]), float(math.exp(log_sigma[0])))]
    for _ in range(cfg.steps):
        sigma = np.exp(log_sigma)
        eps = rng.standard_normal((cfg.runs, cfg.samples))
        f = reward(mu[:, None] + sigma[:, None] * eps, bumps)
        # Leave-one-out baseline: subtracting the other samples' mean reward keeps each
        # term's expectation (the sample is independent of it) and cuts the variance.
        centred = f - (f.sum(axis=1, keepdims=True) - f) / (cfg.samples - 1)
        g_mu = (centred * eps).mean(axis=1) / sigma  # (x − μ)/σ² = ε/σ
        g_sigma = (centred * (eps**2 - 1.0)).mean(axis=1) / sigma + entropy_coef / sigma  # ((x−μ)² − σ²)/σ³
        # Natural-gradient step (Fisher of (μ, log σ) = diag(1/σ², 2)), as in evolution strategies.
        mu = mu + cfg.lr * sigma**2 * g_mu
        log_sigma = np.clip(log_sigma + cfg.lr * 0.5 * sigma * g_sigma, lo, hi)
        path.append((float(mu[0]), float(math.exp(log_sigma[0]))))
    return {"mu": mu, "sigma": np.exp(log_sigma), "path": path}


def wilson(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score 95% interval of a binomial proportion (a fraction of runs)."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def run(cfg: SurrogateConfig) -> dict:
    """Everything the recipe reports, as plain numbers (the JSON)."""
    bumps = cfg.bumps()
    rng = np.random.default_rng(cfg.seed)
    checks = []
    for mu, sigma in cfg.check_points:
        exact = gradient(mu, sigma, bumps)
        mc = mc_gradient(mu, sigma, bumps, cfg.check_samples, rng)
        checks.append({
            "mu": mu, "sigma": sigma, "J": float(objective(mu, sigma, bumps)),
            "closed_form": {"d_mu": float(exact[0]), "d_sigma": float(exact[1])},
            "monte_carlo": {"d_mu": mc.d_mu, "d_sigma": mc.d_sigma, "se_mu": mc.se_mu, "se_sigma": mc.se_sigma, "samples": mc.samples},
            "z": {"d_mu": (mc.d_mu - float(exact[0])) / mc.se_mu, "d_sigma": (mc.d_sigma - float(exact[1])) / mc.se_sigma},
        })
    at_local = [
        {"sigma": s, "d_sigma": float(gradient(cfg.local.center, s, bumps)[1]), "d_mu": float(gradient(cfg.local.center, s, bumps)[0])}
        for s in (0.05, 0.1, 0.25, 0.5, 1.0)
    ]
    sweeps = []
    for beta in cfg.entropy_coefs:
        rows = []
        for sigma0 in cfg.sigma0_grid:
            result = ascend(cfg, sigma0, beta, rng)
            near_local = np.abs(result["mu"] - cfg.local.center) < np.abs(result["mu"] - cfg.global_.center)
            local = int(near_local.sum())
            low, high = wilson(local, cfg.runs)
            rows.append({
                "sigma0": sigma0, "runs": cfg.runs, "ended_local": local, "fraction_local": local / cfg.runs,
                "fraction_local_wilson95": [low, high],
                "final_sigma_median": float(np.median(result["sigma"])),
                "final_J_mean": float(objective(result["mu"], result["sigma"], bumps).mean()),
            })
            if beta == cfg.entropy_coefs[0]:  # the report draws these on J(μ, σ)
                rows[-1]["path_of_run_0"] = result["path"][:: max(1, cfg.steps // 100)]
        sweeps.append({"entropy_coef": beta, "rows": rows})
    return {
        "config": cfg.model_dump(mode="json", by_alias=True),
        "J_at_optima": {
            "local_center_sigma_0": float(objective(cfg.local.center, 0.0, bumps)),
            "global_center_sigma_0": float(objective(cfg.global_.center, 0.0, bumps)),
        },
        "gradient_checks": checks,
        "gradient_at_local_optimum": at_local,
        "sweeps": sweeps,
    }

"""Curriculum strategies and the seeded sampler (pure: no I/O, no clocks).

A strategy gives every task an unnormalized weight from its statistics:

* uniform: w = 1;
* ordered: tasks unlock level by level (a level = one difficulty value of an
  environment); w = 1 at the current level, `review_weight` below, 0 above;
  the next level unlocks when the current level's recent pass rate reaches
  `promote_at` over at least `min_attempts` attempts;
* learnability: w = max(p(1 − p), floor) with p = (passes + a)/(attempts + 2a),
  largest for tasks solved about half the time (Foster & Foerster 2025,
  "Learning to Reason at the Frontier of Learnability").

`Curriculum` then applies the DAPO exclusion filter and the environment mix
(P(task) = mix_e · w_i / Σ_{j in e} w_j) and draws n distinct tasks one after
another ∝ p among those not yet drawn (successive sampling without
replacement), with one vectorised CDF pass per call.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from outrider.config.curriculum import (
    ExclusionConfig,
    LearnabilityStrategy,
    OrderedStrategy,
    StrategyConfig,
    UniformStrategy,
)
from outrider.services.curriculum.table import TaskInfo, TaskRecord, TaskTable

STATE_VERSION = 1


def learnability_weights(passes: np.ndarray, count: np.ndarray, prior: float, floor: float) -> np.ndarray:
    """max(p(1 − p), floor), p = (passes + a) / (count + 2a). Shape: (N,), (N,) -> (N,)."""
    p = (passes + prior) / (count + 2.0 * prior)
    return np.maximum(p * (1.0 - p), floor)


class Strategy(ABC):
    """Weights from statistics; may keep state that outcomes change (levels)."""

    name = ""

    def __init__(self, table: TaskTable):
        self.table = table

    @abstractmethod
    def weights(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Weights of `rows` (all tasks when None)."""

    def observe(self, rows: Sequence[int]) -> bool:
        """Outcomes of `rows` were recorded; True when every weight must be recomputed."""
        return False

    def level(self, env_index: int) -> float:
        return 0.0

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None


class Uniform(Strategy):
    name = "uniform"

    def weights(self, rows=None):
        return np.ones(len(self.table) if rows is None else len(rows))


class Learnability(Strategy):
    name = "learnability"

    def __init__(self, table: TaskTable, cfg: LearnabilityStrategy):
        super().__init__(table)
        self.cfg = cfg

    def weights(self, rows=None):
        t = self.table
        sel = slice(None) if rows is None else rows
        return learnability_weights(t.recent_passes[sel], t.recent_count[sel], self.cfg.prior_strength, self.cfg.min_weight)


class Ordered(Strategy):
    name = "ordered"

    def __init__(self, table: TaskTable, cfg: OrderedStrategy):
        super().__init__(table)
        self.cfg = cfg
        self.levels = [np.unique(table.difficulty[table.env_idx == e]) for e in range(len(table.envs))]
        self.current = np.zeros(len(table.envs), dtype=np.int64)

    def _level_values(self) -> np.ndarray:
        return np.array([self.levels[e][self.current[e]] for e in range(len(self.levels))])

    def level(self, env_index: int) -> float:
        return float(self.levels[env_index][self.current[env_index]])

    def weights(self, rows=None):
        t = self.table
        sel = slice(None) if rows is None else rows
        difficulty, level = t.difficulty[sel], self._level_values()[t.env_idx[sel]]
        return np.where(difficulty == level, 1.0, np.where(difficulty < level, self.cfg.review_weight, 0.0))

    def observe(self, rows):
        t, promoted = self.table, False
        for e in np.unique(t.env_idx[np.asarray(rows, dtype=np.int64)]):
            if self.current[e] + 1 >= len(self.levels[e]):
                continue
            at_level = (t.env_idx == e) & (t.difficulty == self.levels[e][self.current[e]])
            count = int(t.recent_count[at_level].sum())
            if count >= self.cfg.min_attempts and t.recent_passes[at_level].sum() / count >= self.cfg.promote_at:
                self.current[e] += 1
                promoted = True
        return promoted

    def state_dict(self):
        return {"levels": {self.table.envs[e]: self.level(e) for e in range(len(self.levels))}}

    def load_state_dict(self, state):
        for env, value in state.get("levels", {}).items():
            if env in self.table.envs:
                e = self.table.envs.index(env)
                # The highest level <= the saved one (levels may have changed with the pools).
                self.current[e] = max(0, int(np.searchsorted(self.levels[e], value, side="right")) - 1)


def make_strategy(cfg: StrategyConfig, table: TaskTable) -> Strategy:
    if isinstance(cfg, UniformStrategy):
        return Uniform(table)
    if isinstance(cfg, OrderedStrategy):
        return Ordered(table, cfg)
    if isinstance(cfg, LearnabilityStrategy):
        return Learnability(table, cfg)
    raise TypeError(f"unknown strategy config {type(cfg).__name__}")


def task_key(env: str, task_id: str) -> str:
    """A task's key in serialized state (unambiguous whatever the ids contain)."""
    return json.dumps([env, task_id])


class NoTasks(RuntimeError):
    """Nothing can be sampled (for this environment)."""


class Curriculum:
    """Task statistics, a strategy, the exclusion filter and the environment mix, under one seeded RNG."""

    def __init__(
        self,
        tasks: Sequence[TaskInfo],
        strategy: StrategyConfig,
        exclusion: ExclusionConfig | None = None,
        env_weights: dict[str, float] | None = None,
        seed: int = 0,
        window: int = 16,
        success_threshold: float = 1.0,
    ):
        self.table = TaskTable(tasks, window)
        self.strategy = make_strategy(strategy, self.table)
        self.exclusion = exclusion or ExclusionConfig()
        self.mix = np.array([(env_weights or {}).get(env, 1.0) for env in self.table.envs], dtype=np.float64)
        self.seed = seed
        self.success_threshold = success_threshold
        self.rng = np.random.default_rng(seed)
        self.clock = 0
        """Tasks handed out so far; exclusion re-checks are timed on it."""
        self._weights = self.strategy.weights()

    @property
    def name(self) -> str:
        return self.strategy.name + ("+exclusion" if self.exclusion.enabled else "")

    def env_index(self, env: str) -> int:
        """Index of an environment; KeyError when it has no tasks here."""
        try:
            return self.table.envs.index(env)
        except ValueError:
            raise KeyError(env) from None

    def excluded(self) -> np.ndarray:
        if not self.exclusion.enabled:
            return np.zeros(len(self.table), dtype=bool)
        return self.table.excluded_until > self.clock

    def sampling_probs(self, env: str | None = None, use_exclusion: bool = True) -> np.ndarray:
        """P(task) for one draw, shape (N,); all zero when nothing can be drawn."""
        t = self.table
        w = self._weights
        if use_exclusion and self.exclusion.enabled:
            w = np.where(self.excluded(), 0.0, w)
        mix = self.mix
        if env is not None:
            mix = np.zeros_like(self.mix)
            mix[self.env_index(env)] = 1.0
        env_sum = np.bincount(t.env_idx, weights=w, minlength=len(t.envs))
        mix = np.where(env_sum > 0, mix, 0.0)
        if mix.sum() <= 0:
            return np.zeros(len(t))
        per_env = mix / mix.sum() / np.where(env_sum > 0, env_sum, 1.0)
        return w * per_env[t.env_idx]

    def sample(self, n: int, env: str | None = None) -> np.ndarray:
        """Rows of the next `n` tasks: distinct while there are enough eligible tasks."""
        if n < 1:
            raise ValueError("n must be >= 1")
        p = self.sampling_probs(env)
        if not p.any() and self.exclusion.enabled:
            # Every candidate is excluded: re-check them now rather than stall training.
            p = self.sampling_probs(env, use_exclusion=False)
        if not p.any():
            where = f" in environment {env!r}" if env else ""
            raise NoTasks(f"no task{where} has a positive sampling weight")
        candidates = np.flatnonzero(p)
        if n <= len(candidates):
            rows = candidates[self._without_replacement(p[candidates], n)]
        else:
            rows = self.rng.choice(candidates, size=n, p=p[candidates] / p[candidates].sum())
        self.clock += n
        return rows

    def _without_replacement(self, p: np.ndarray, n: int) -> np.ndarray:
        """n distinct indices drawn one after another ∝ p among those not yet drawn.

        Draws with replacement from the CDF and skips repeats (rejection = exactly
        the successive distribution); when repeats are frequent (mass on a few
        tasks), exponential races finish the job: the n smallest E_i / p_i with
        E_i ~ Exp(1) (the Gumbel-top-k trick, Kool et al. 2019).
        """
        cdf = np.cumsum(p)
        chosen: list[int] = []
        seen: set[int] = set()
        for _ in range(4):
            draws = np.searchsorted(cdf, self.rng.random(n - len(chosen)) * cdf[-1], side="right")
            for index in np.minimum(draws, len(p) - 1).tolist():
                if index not in seen:
                    seen.add(index)
                    chosen.append(index)
            if len(chosen) == n:
                return np.asarray(chosen, dtype=np.int64)
        # Successive sampling of the rest given those drawn = a race among the rest.
        keys = self.rng.standard_exponential(len(p)) / p
        keys[chosen] = np.inf
        missing = n - len(chosen)
        rest = np.argpartition(keys, missing - 1)[:missing]
        rest = rest[np.argsort(keys[rest], kind="stable")]
        return np.concatenate([np.asarray(chosen, dtype=np.int64), rest.astype(np.int64)])

    def report(self, row: int, rewards: Sequence[float], now: float = 0.0) -> None:
        """Record one group of attempts at task `row`."""
        passes = [r >= self.success_threshold for r in rewards]
        self.table.record(passes, rewards, row, now)
        ex = self.exclusion
        if ex.enabled and len(passes) >= ex.min_group_size:
            uniform = (ex.all_correct and all(passes)) or (ex.all_wrong and not any(passes))
            self.table.excluded_until[row] = self.clock + ex.recheck_after if uniform else 0

    def after_reports(self, rows: Sequence[int]) -> None:
        """Refresh weights once a batch of reports is recorded."""
        if self.strategy.observe(rows):
            self._weights = self.strategy.weights()
        else:
            rows = np.unique(np.asarray(rows, dtype=np.int64))
            self._weights[rows] = self.strategy.weights(rows)

    def weights(self) -> np.ndarray:
        return self._weights

    def global_state(self) -> dict:
        """Everything but the per-task statistics (JSON-serializable)."""
        return {
            "version": STATE_VERSION,
            "strategy": self.strategy.name,
            "strategy_state": self.strategy.state_dict(),
            "seed": self.seed,
            "clock": self.clock,
            "rng": self.rng.bit_generator.state,
        }

    def task_records(self, rows: Sequence[int] | None = None) -> list[TaskRecord]:
        rows = self.table.touched_rows() if rows is None else rows
        return [self.table.export(int(row)) for row in rows]

    def state_dict(self) -> dict:
        return {**self.global_state(), "tasks": {task_key(r.env, r.task_id): r.to_json() for r in self.task_records()}}

    def load_state_dict(self, state: dict) -> list[TaskRecord]:
        """Restore; returns records of tasks that are no longer in the pools."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"curriculum state version {state.get('version')!r} is not {STATE_VERSION}")
        if state["strategy"] != self.strategy.name:
            raise ValueError(f"the state was made by strategy {state['strategy']!r}, this curriculum uses {self.strategy.name!r}")
        self.seed = int(state["seed"])
        self.clock = int(state["clock"])
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]
        self.strategy.load_state_dict(state.get("strategy_state", {}))
        records = [TaskRecord.from_json(*json.loads(key), data) for key, data in state.get("tasks", {}).items()]
        self.table.reset_stats()
        unknown = self.table.load(records)
        self._weights = self.strategy.weights()
        return unknown

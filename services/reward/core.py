"""The reward service's work, free of gRPC: verifiers per environment, the PRM, shaping.

Verifier instances are built once per (environment entry, verifier name) at
start; a request that overrides the verifier set gets the environment's own
config of a verifier when it has one, else the `*` entry's, else defaults.
PRM forward passes run on a worker thread (the event loop keeps serving);
when a batch fails, its items are retried one by one so one bad item cannot
fail the others. A PRM ensemble (prm/ensemble.py) gives every member's scores
per item; they are checked (a failed member is the item's ERROR) and combined here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from outrider.config.reward import DEFAULT_ENV_KEY, VERIFIER_CONFIGS, RewardServiceConfig
from outrider.envs.shaping import step_rewards
from outrider.proto.chat import Message
from outrider.services.reward.prm.ensemble import PRMEnsemble
from outrider.services.reward.prm.segmentation import StepSpan, segment
from outrider.services.reward.scoring import ERROR, INVALID_INPUT, OK, ItemScore, Scorer, score_item
from outrider.services.reward.verifiers import VerifierInput, build_verifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepsJob:
    """One trajectory to score: its messages, steps and how to shape them."""

    messages: Sequence[Message]
    steps: Sequence[StepSpan]
    shaping: str


@dataclass(frozen=True)
class StepsOutcome:
    steps: Sequence[StepSpan]
    scores: np.ndarray | None
    rewards: np.ndarray | None
    shaping: str
    code: str
    message: str = ""
    disagreement: float | None = None
    """PRM ensemble: mean over steps of the members' std (None with a single PRM)."""


class Oversized(ValueError):
    """An item exceeds a limit; args: (item index, message)."""


class RewardCore:
    def __init__(self, cfg: RewardServiceConfig, prm=None):
        self.cfg = cfg
        self.prm = prm
        self._verifiers: dict[tuple[str, str], Scorer] = {}
        for env, specs in cfg.verifiers.items():
            for spec in specs:
                self._verifiers[(env, spec.type)] = Scorer(build_verifier(spec), spec.weight, spec.timeout_s, spec.constraint)

    def _entry(self, env: str) -> str:
        return env if env in self.cfg.verifiers else DEFAULT_ENV_KEY

    def verifiers_for(self, env: str, names: Sequence[str] = ()) -> list[Scorer]:
        """The verifiers an item of `env` gets (all configured ones, or the named ones)."""
        entry = self._entry(env)
        if not names:
            if entry not in self.cfg.verifiers:
                return []
            return [self._verifiers[(entry, spec.type)] for spec in self.cfg.verifiers[entry]]
        chosen = []
        for name in names:
            for key in ((entry, name), (DEFAULT_ENV_KEY, name), ("<default>", name)):
                if key in self._verifiers:
                    chosen.append(self._verifiers[key])
                    break
            else:
                spec = VERIFIER_CONFIGS[name]()
                self._verifiers[("<default>", name)] = Scorer(build_verifier(spec), spec.weight, spec.timeout_s, spec.constraint)
                chosen.append(self._verifiers[("<default>", name)])
        return chosen

    def configured(self) -> list[tuple[str, str, float]]:
        """(environment entry, verifier name, weight) of every configured verifier."""
        return [(env, spec.type, spec.weight) for env, specs in self.cfg.verifiers.items() for spec in specs]

    async def score(self, items: Sequence[VerifierInput], names: Sequence[str] = ()) -> list[ItemScore]:
        async def one(item: VerifierInput) -> ItemScore:
            verifiers = self.verifiers_for(item.env, names)
            if not verifiers:
                return ItemScore(None, ERROR, f"no verifiers configured for environment {item.env!r}", "verifiers", ())
            return await score_item(item, verifiers)

        return list(await asyncio.gather(*(one(item) for item in items)))

    def segment(self, messages: Sequence[Message], mode: str | None, delimiter: str | None) -> list[StepSpan]:
        seg = self.cfg.segmentation
        return segment(messages, mode or seg.mode, delimiter if delimiter else seg.delimiter)

    async def score_steps(self, jobs: Sequence[StepsJob]) -> list[StepsOutcome]:
        """s_t and shaped r_t of every job; raises Oversized for an item beyond the limits."""
        limits = self.cfg.limits
        for index, job in enumerate(jobs):
            if len(job.steps) > limits.max_steps:
                raise Oversized(index, f"{len(job.steps)} steps, more than limits.max_steps ({limits.max_steps})")
        scorable = [i for i, job in enumerate(jobs) if job.steps]
        encoded = await asyncio.to_thread(lambda: [self.prm.encode(jobs[i].messages, jobs[i].steps) for i in scorable])
        for i, enc in zip(scorable, encoded, strict=True):
            tokens = self.prm.num_tokens(enc)
            if tokens > limits.max_trajectory_tokens:
                raise Oversized(i, f"{tokens} PRM input tokens, more than limits.max_trajectory_tokens ({limits.max_trajectory_tokens})")
        scores = await asyncio.to_thread(self._score_isolated, encoded)
        outcomes: list[StepsOutcome] = []
        by_index = dict(zip(scorable, scores, strict=True))
        for i, job in enumerate(jobs):
            if not job.steps:
                outcomes.append(StepsOutcome(job.steps, None, None, job.shaping, INVALID_INPUT, "no assistant step to score"))
                continue
            outcomes.append(self._steps_outcome(job, by_index[i]))
        return outcomes

    def _steps_outcome(self, job: StepsJob, result) -> StepsOutcome:
        if isinstance(result, str):
            return StepsOutcome(job.steps, None, None, job.shaping, ERROR, result)
        disagreement = None
        if isinstance(self.prm, PRMEnsemble):
            problem = self.prm.check(result, len(job.steps))
            if problem is not None:
                return StepsOutcome(job.steps, None, None, job.shaping, ERROR, problem)
            result, disagreement = self.prm.combine(result)
        elif len(result) != len(job.steps) or not np.all(np.isfinite(result)):
            return StepsOutcome(job.steps, None, None, job.shaping, ERROR, f"PRM returned invalid scores {result.tolist()[:8]}")
        return StepsOutcome(job.steps, result, np.asarray(step_rewards(result, job.shaping)), job.shaping, OK, disagreement=disagreement)

    def _score_isolated(self, encoded: list) -> list:
        """Scores per item; an item whose scoring raises gets the error message instead."""
        if not encoded:
            return []
        try:
            return list(self.prm.score(encoded))
        except Exception as exc:  # noqa: BLE001 - retried item by item below
            log.warning("PRM batch of %d failed (%s: %s); scoring items one by one", len(encoded), type(exc).__name__, exc)
        results: list = []
        for enc in encoded:
            try:
                results.append(self.prm.score([enc])[0])
            except Exception as exc:  # noqa: BLE001 - this item's ERROR status
                results.append(f"PRM failed: {type(exc).__name__}: {exc}")
        return results

    async def close(self) -> None:
        for scorer in self._verifiers.values():
            await scorer.verifier.close()

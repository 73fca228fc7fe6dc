"""One episode of a Python environment: turn limit, totals, explicit errors.

`Episode` is what a session holds; tests drive it directly with scripted
policies. It never turns a failure into a reward: when the environment raises,
the step reports `error` (the episode is then over) and no reward.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from outrider.envs.interface import Environment, Message, StepResult

log = logging.getLogger(__name__)


@dataclass
class EpisodeStep:
    """The outcome of one policy turn."""

    turn: int
    done: bool
    truncated: bool = False
    result: StepResult | None = None
    """None when the environment failed (see `error`)."""
    error: str = ""

    @property
    def reward(self) -> float | None:
        return None if self.result is None else self.result.reward

    @property
    def observation(self) -> list[Message]:
        return [] if self.result is None or self.done else self.result.observation


@dataclass
class Episode:
    env: Environment
    max_turns: int
    turns: int = 0
    total_reward: float = 0.0
    solved: bool = False
    done: bool = False
    errors: int = 0
    history: list[EpisodeStep] = field(default_factory=list)

    async def reset(self, task_id: str, seed: int = 0) -> list[Message]:
        return await self.env.reset(task_id, seed)

    async def step(self, action: str) -> EpisodeStep:
        """Apply one turn. Raises RuntimeError if the episode is already over."""
        if self.done:
            raise RuntimeError("the episode is over")
        self.turns += 1
        try:
            result = await self.env.step(action)
        except Exception as exc:  # noqa: BLE001 - reported as an error status, never as a reward
            log.warning("environment %s failed at turn %d", type(self.env).__name__, self.turns, exc_info=True)
            self.errors += 1
            self.done = True
            outcome = EpisodeStep(self.turns, done=True, error=f"{type(exc).__name__}: {exc}")
            self.history.append(outcome)
            return outcome
        self.total_reward += result.reward
        self.solved = self.solved or result.solved
        truncated = not result.done and self.turns >= self.max_turns
        self.done = result.done or truncated
        outcome = EpisodeStep(self.turns, done=self.done, truncated=truncated, result=result)
        self.history.append(outcome)
        return outcome

    async def close(self) -> None:
        await self.env.close()

"""The one verifier signature, and what verifiers may raise.

    class MyVerifier(Verifier):
        name = "mine"
        async def verify(self, item: VerifierInput) -> Verdict: ...

A verdict is the verifier's raw value with an explanation. A verifier that
cannot judge raises: `InvalidItem` when the item lacks what it needs (status
INVALID_INPUT), anything else is an ERROR status with the exception named —
never a silent 0. A wrong answer is not an error: it is a verdict of 0.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class VerifierInput:
    """What verifiers see of a ScoreItem."""

    response: str
    reference: str = ""
    prompt: str = ""
    env: str = ""
    task_id: str = ""
    response_tokens: int = 0
    conversation: tuple[tuple[str, str], ...] = field(default=())
    """(role, content) of every message, when the caller sent the conversation."""


@dataclass(frozen=True)
class Verdict:
    value: float
    detail: str = ""


class VerifierError(RuntimeError):
    """The verifier cannot judge this item (bad reference, broken sandbox): status ERROR."""


class InvalidItem(ValueError):
    """The item lacks what this verifier needs: status INVALID_INPUT."""


class Verifier(ABC):
    name: ClassVar[str] = ""

    def __init__(self, cfg, concurrency: int = 0):
        self.cfg = cfg
        self.slots = asyncio.Semaphore(concurrency) if concurrency > 0 else None
        """Items judged at once (None: no bound); an item's time limit starts when it gets a slot."""

    @abstractmethod
    async def verify(self, item: VerifierInput) -> Verdict:
        """Judge one item."""

    async def close(self) -> None:
        """Release resources (sandboxes, threads)."""
        return None

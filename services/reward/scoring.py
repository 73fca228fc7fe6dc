"""Outcome scoring: run an item's verifiers and combine them.

reward = Σ_k w_k · v_k over the item's verifiers that are not constraints
(docs/reward.md: a constraint's value travels as a component, and the learner
turns it into a Lagrangian penalty), present only when every verifier returned a
value. A verifier that raises, times out or cannot judge the item makes the
item's status ERROR / TIMEOUT / INVALID_INPUT (the first such component
decides) and the reward absent: a failed verifier is an error, not a zero.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

from outrider.config.reward import ConstraintConfig
from outrider.services.reward.verifiers import InvalidItem, Verifier, VerifierInput

OK, ERROR, TIMEOUT, INVALID_INPUT = "OK", "ERROR", "TIMEOUT", "INVALID_INPUT"


class Scorer(NamedTuple):
    """A configured verifier: its weight in the sum, time limit and constraint (None: a weighted term)."""

    verifier: Verifier
    weight: float
    timeout_s: float
    constraint: ConstraintConfig | None = None


@dataclass(frozen=True)
class Component:
    name: str
    weight: float
    value: float | None
    code: str
    detail: str
    constraint: ConstraintConfig | None = None


@dataclass(frozen=True)
class ItemScore:
    reward: float | None
    code: str
    message: str
    source: str
    components: tuple[Component, ...]


async def run_verifier(verifier: Verifier, weight: float, timeout_s: float, item: VerifierInput) -> Component:
    name = verifier.name
    try:
        if verifier.slots is None:
            verdict = await asyncio.wait_for(verifier.verify(item), timeout_s)
        else:
            async with verifier.slots:
                verdict = await asyncio.wait_for(verifier.verify(item), timeout_s)
    except TimeoutError:
        return Component(name, weight, None, TIMEOUT, f"verifier {name} took longer than {timeout_s:g} s")
    except InvalidItem as exc:
        return Component(name, weight, None, INVALID_INPUT, str(exc))
    except Exception as exc:  # noqa: BLE001 - any verifier failure is this item's ERROR status
        return Component(name, weight, None, ERROR, f"{type(exc).__name__}: {exc}")
    if not math.isfinite(verdict.value):
        return Component(name, weight, None, ERROR, f"verifier {name} returned a non-finite value {verdict.value!r}")
    return Component(name, weight, float(verdict.value), OK, verdict.detail)


async def score_item(item: VerifierInput, verifiers: Sequence[Scorer | tuple]) -> ItemScore:
    """`verifiers`: Scorers (or (verifier, weight, timeout_s) triples), run concurrently."""
    scorers = [Scorer(*entry) for entry in verifiers]
    components = await asyncio.gather(*(run_verifier(s.verifier, s.weight, s.timeout_s, item) for s in scorers))
    components = [replace(c, constraint=s.constraint) for c, s in zip(components, scorers, strict=True)]
    failed = [c for c in components if c.code != OK]
    if failed:
        first = failed[0]
        return ItemScore(None, first.code, first.detail, f"verifier:{first.name}", tuple(components))
    return ItemScore(sum(c.weight * c.value for c in components if c.constraint is None), OK, "", "", tuple(components))

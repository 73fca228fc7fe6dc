"""Choosing a self-play opponent's weights version (rollout.self_play): pure and seeded.

    latest   the version the trained seat plays (self-play against itself)
    fixed    one configured version
    league   a draw from the K most recent versions before the latest that the policy
             service holds (PolicyInfo.resident_versions: the learner's last pushes, kept
             by policy.max_resident_versions), uniform or recency-weighted:
                 w(v) = 1 / (latest − v)      (the version one update back weighs 1)

A draw is a pure function of (seed, key), the key being the group id: u = the first 8
bytes of sha256("<seed>:<key>") as an integer / 2^64 ∈ [0, 1), and the member is the first
whose cumulative normalised weight exceeds u (inverse CDF, members newest first). So a
retried group meets the same opponent, and a run replays its opponents from its seed,
whatever order the workers play groups in. An empty league (no earlier version resident
yet, e.g. before the first weights update) plays the latest; the choice is reported with
every group (`opponent_version`), never hidden.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal


def league(resident: Sequence[int], latest: int, size: int) -> list[int]:
    """The `size` most recent resident versions before `latest`, newest first."""
    return sorted((v for v in set(resident) if v < latest), reverse=True)[:size]


def league_weights(members: Sequence[int], latest: int, weighting: Literal["uniform", "recency"]) -> list[float]:
    """Unnormalised draw weights of `members` (uniform: 1 each; recency: 1 / (latest − v))."""
    if weighting == "uniform":
        return [1.0] * len(members)
    return [1.0 / (latest - v) for v in members]


def unit_draw(seed: int, key: str) -> float:
    """u ∈ [0, 1) from sha256("<seed>:<key>")."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick(members: Sequence[int], weights: Sequence[float], u: float) -> int:
    """Inverse CDF: the first member whose cumulative normalised weight exceeds u."""
    if not members:
        raise ValueError("pick: no members to draw from")
    total = sum(weights)
    cumulative = 0.0
    for member, weight in zip(members, weights, strict=True):
        cumulative += weight / total
        if u < cumulative:
            return member
    return members[-1]  # u within rounding of 1


@dataclass(frozen=True)
class OpponentSampler:
    """The opponent version of each self-play group (fields as in SelfPlayConfig)."""

    mode: Literal["latest", "fixed", "league"] = "latest"
    fixed_version: int = 0
    league_size: int = 4
    weighting: Literal["uniform", "recency"] = "uniform"
    seed: int = 0

    @classmethod
    def of(cls, cfg) -> OpponentSampler:
        """From a `SelfPlayConfig`."""
        return cls(cfg.opponent, cfg.fixed_version, cfg.league_size, cfg.weighting, cfg.seed)

    def choose(self, latest: int, resident: Sequence[int], key: str) -> int:
        """The opponent's version for the group `key`, given the latest version and the
        versions the policy service holds."""
        if self.mode == "latest":
            return latest
        if self.mode == "fixed":
            return self.fixed_version
        members = league(resident, latest, self.league_size)
        if not members:
            return latest
        return pick(members, league_weights(members, latest, self.weighting), unit_draw(self.seed, key))

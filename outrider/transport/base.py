"""The trajectory bus interface: typed sender and receiver, no Redis in sight.

Rollout workers hold a TrajectorySender; the learner holds a TrajectoryReceiver.
The learner's contract with the bus is "receive, train, commit": a group is
committed (acknowledged) only after the optimizer step that used it is durable,
so a crash anywhere loses nothing and trains nothing twice.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from outrider.proto.v1.trajectory_pb2 import TrajectoryGroup


class BusError(RuntimeError):
    """The bus could not complete an operation."""


class BusTimeout(BusError):
    """A send waited longer than its timeout (backpressure or Redis unreachable)."""


@dataclass(frozen=True)
class Delivery:
    """One group handed to a consumer, with what is needed to commit it."""

    entry_id: str
    """Position in the stream (opaque to callers)."""
    group: TrajectoryGroup
    size_bytes: int
    """Serialized size of the group."""
    redelivered: bool = False
    """True when the group was first delivered to another (dead) consumer or before a restart."""


@dataclass(frozen=True)
class CommitResult:
    committed: list[str] = field(default_factory=list)
    """Group ids committed for the first time by this call."""
    duplicates: list[str] = field(default_factory=list)
    """Group ids that another consumer had already committed (trained twice: a lease expired)."""


@dataclass(frozen=True)
class BusStats:
    """Counters kept by the bus since its keys were created."""

    produced: int = 0
    """Distinct groups accepted from producers."""
    duplicates_dropped: int = 0
    """Sends of an already produced group id (retries), not delivered again."""
    committed: int = 0
    """Distinct groups committed by consumers."""
    commit_duplicates: int = 0
    """Commits of an already committed group (0 in a healthy run)."""
    dead_lettered: int = 0
    """Entries moved to the dead-letter stream."""
    discarded: int = 0
    """Groups their producer played and did not send: no learning signal (all rewards
    equal under dynamic sampling), so no step could use them (`TrajectorySender.discard`)."""
    reclaimed: int = 0
    """Entries taken over from a silent consumer."""
    queued: int = 0
    """Entries in the stream now: not yet delivered, or delivered and not committed."""
    pending: int = 0
    """Entries delivered and not yet committed."""
    demand: int | None = None
    """Deliveries the consumer still waits for (see `announce_demand`); None: it never said."""


class TrajectorySender(abc.ABC):
    @abc.abstractmethod
    def send(self, group: TrajectoryGroup) -> bool:
        """Append a group; block while the bus is full (backpressure).

        Returns False when a group with the same id was produced before (an
        idempotent retry): it is not delivered twice.
        """

    @abc.abstractmethod
    def discard(self, group_id: str) -> bool:
        """Record that the group `group_id` was played and will not be sent (it has no
        learning signal), so that the run's counts account for it.

        Returns False when the id was sent or discarded before (a retried task): the
        caller reports it once only."""

    def close(self) -> None:
        """Release connections."""


class TrajectoryReceiver(abc.ABC):
    @abc.abstractmethod
    def receive(self, max_groups: int, block_s: float | None = None) -> list[Delivery]:
        """Up to `max_groups` deliveries: first this consumer's own unfinished
        ones (after a restart), then ones reclaimed from silent consumers, then new.
        Waits up to `block_s` (None: the configured block time) when nothing is there.
        Malformed entries never reach the caller: they go to the dead-letter stream."""

    @abc.abstractmethod
    def commit(self, deliveries: list[Delivery]) -> CommitResult:
        """Acknowledge groups whose training step has been committed."""

    @abc.abstractmethod
    def commit_group_ids(self, group_ids: list[str]) -> CommitResult:
        """Commit groups by id, wherever they are in the stream (delivered or not).

        For recovery: a learner that crashed after saving a checkpoint but before
        committing its groups commits them from the checkpoint's list on restart."""

    @abc.abstractmethod
    def extend_lease(self, deliveries: list[Delivery]) -> None:
        """Tell the bus this consumer is still working on these groups (long steps)."""

    @abc.abstractmethod
    def reject(self, delivery: Delivery, reason: str) -> None:
        """Move a delivered group to the dead-letter stream (it will not come back)."""

    @abc.abstractmethod
    def announce_demand(self, groups: int, held: int) -> None:
        """Say that this consumer now waits for `groups` more deliveries beyond the
        `held` ones it holds uncommitted (0 while it trains).

        Producers that schedule on demand (`rollout.dispatch: on_demand`) read what is
        still missing from `stats().demand` and produce only that much, so rollouts run
        while the learner waits instead of competing with it for the machine. The bus
        derives it from its own pending count — demand = groups − (pending − held) — so
        a delivery lowers it at once, before the consumer says anything again, and a
        commit takes the committed groups out of `held` as it takes them out of
        `pending`: the next step's demand can be announced before this step's groups
        are committed (the learner does so right after it publishes its weights)."""

    def close(self) -> None:
        """Release connections."""

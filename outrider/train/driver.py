"""The dispatcher: feeds the learner rollouts, ahead of it or on its demand.

It asks the curriculum for tasks and sends one Celery task per group. In
`ahead` mode it keeps (groups being played) + (groups on the bus, not yet
trained) at `max_groups_ahead`, within the staleness bound: rollouts overlap
training. In `on_demand` mode it sends only what the learner waits for (the
bus's demand), so generation and training take turns on shared cores.
Group ids are `<run>-g<seq>` with `seq` from a Redis counter: a retried Celery
task reuses its id and the bus drops the duplicate. Partial rollouts: a group
parked by its worker (outrider/rollout/partial.py) is sent again, under its id,
before any new task, once the policy serves newer weights than its segments'.

Watchdog (`rollout.dispatcher_stall_s`): while groups are in play, something must move
somewhere: a rollout task finishing (or failing), a group reaching the bus, the learner
committing one. When nothing has for the stall limit, the groups in play are sent again
(a task lost between Celery and a worker comes back; the bus drops whichever copy is
second); when nothing moves for another stall limit after that, the run stops with
`DispatchStalled`, which names the silence and what was in play. The dispatcher recovers
in-process rather than restarting: it holds no state that a restart would repair, and
every call of its loop has a deadline (Redis socket timeouts, gRPC deadlines), so the
loop itself cannot hang between checks. Nothing in play (the learner updating between
on-demand steps) stops the clock: the learner's own watchdog covers that time.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from outrider.config import RunConfig
from outrider.process import Stalled, Watchdog
from outrider.rollout.partial import due
from outrider.rollout.worker import TASK_NAME, encode_task, make_app
from outrider.transport import BusStats, RedisReceiver, RolloutPark

log = logging.getLogger(__name__)


class DispatchStalled(RuntimeError):
    """Nothing moved for two stall limits in a row while groups were in play."""


@dataclass
class RolloutStats:
    dispatched: int = 0
    finished: int = 0
    sent: int = 0
    no_signal: int = 0
    """Groups played and not sent: all rewards equal under dynamic sampling."""
    failed_tasks: int = 0
    episode_errors: int = 0
    seconds: float = 0.0
    parked: int = 0
    """Tasks that ended with their group parked (partial rollouts)."""
    resumed: int = 0
    """Parked groups sent again."""
    recent: list[dict] = field(default_factory=list)


class Dispatcher:
    def __init__(self, run: RunConfig, curriculum, run_dir: Path, served_version: Callable[[], int] | None = None,
                 clock: Callable[[], float] | None = None):
        """`served_version`: the weights version the policy serves now (partial rollouts
        resume a parked group only on newer weights than it was sampled with). `clock`:
        the watchdog's (tests pass their own)."""
        self.run = run
        self.curriculum = curriculum
        self.served_version = served_version
        self.app = make_app(run)
        self.redis = redis.Redis.from_url(run.redis.url, socket_timeout=run.redis.socket_timeout_s)
        # The learner's consumer group is created here too, so that nothing is
        # produced to a stream no one will read from its start.
        self.bus = RedisReceiver(self.redis, run.bus, name="dispatcher-audit")
        self.park = RolloutPark(self.redis, run.bus) if run.rollout.partial.enabled else None
        self.pending: dict[str, object] = {}
        self.args: dict[str, list] = {}  # group id → its Celery task's arguments, while in play
        self.stats = RolloutStats()
        self.log_path = Path(run_dir) / "rollouts.jsonl"
        learner = run.learner
        # A group dispatched now is trained after the `max_ahead` before it, about
        # max_ahead / groups_per_step versions later: keep that within the lag bound
        # (but always at least one step ahead, or a lag of 0 would starve the learner).
        self.max_ahead = run.rollout.max_groups_ahead or learner.groups_per_step * max(1, learner.max_policy_lag)
        self.mode = dispatch_mode(run)
        self.watchdog = Watchdog("dispatcher", run.rollout.dispatcher_stall_s, self._stalled, clock=clock,
                                 active=lambda: bool(self.pending))
        self.stalls = 0
        """Stalls since the last progress (the second stops the run)."""
        self._moved: tuple[int, ...] | None = None

    def _next_group_id(self) -> str:
        seq = self.redis.incr(f"{self.run.name}:dispatch-seq")
        return f"{self.run.name}-g{seq:07d}"

    def tick(self) -> None:
        """Collect finished rollouts, top up the queue, check the watchdog."""
        self._collect()
        bus = self.bus.stats()
        self._top_up(bus)
        self._watch(bus)

    def _top_up(self, bus: BusStats) -> None:
        wanted = self._wanted(bus)
        if wanted > 0:
            wanted -= self._resume(wanted)
        if wanted <= 0:
            return
        tasks = self.curriculum.next_tasks(wanted, include_reference=True)
        for task in tasks:
            group_id = self._next_group_id()
            seed = int(group_id.rsplit("g", 1)[1])
            self.args[group_id] = [encode_task(task), group_id, seed]
            self.pending[group_id] = self.app.send_task(TASK_NAME, args=self.args[group_id])
            self.stats.dispatched += 1

    def _watch(self, bus: BusStats) -> None:
        """Progress anywhere restarts the stall clock; then check it (see the module doc)."""
        moved = (self.stats.finished, bus.produced, bus.committed, bus.discarded, bus.dead_lettered)
        if moved != self._moved:
            self._moved = moved
            self.stalls = 0
            self.watchdog.beat(f"{len(self.pending)} groups in play, {bus.queued} on the bus, {bus.committed} committed")
        self.watchdog.check()

    def _stalled(self, error: Stalled) -> None:
        self.stalls += 1
        if self.stalls > 1:
            raise DispatchStalled(f"{error}; sending the groups in play again did not help")
        log.error("%s; sending the %d groups in play again", error, len(self.pending))
        self.replay_in_play("stalled")
        self.watchdog.rearm()

    def _resume(self, wanted: int) -> int:
        """Send up to `wanted` parked groups again (same id and seed); how many were sent."""
        if self.park is None or self.served_version is None:
            return 0
        parked = self.park.parked()
        if not parked:
            return 0
        try:
            served = self.served_version()
        except Exception as exc:  # the policy restarting: resume at a later tick
            log.warning("parked groups wait: the policy's version is unknown (%s)", exc)
            return 0
        groups = due(parked, served, self.pending, wanted)
        for group in groups:
            gid = group.group_id
            self.args[gid] = [encode_task(group.task), gid, group.seed]
            self.pending[gid] = self.app.send_task(TASK_NAME, args=self.args[gid])
            self.stats.resumed += 1
        return len(groups)

    def replay_in_play(self, reason: str = "a rollout worker died") -> int:
        """Send every group in play again, under the same id and seed.

        For after a rollout worker died: Celery gives back a task that a SIGKILLed
        threads-pool worker held only after the visibility timeout (twice the task time
        limit), and until then the group would count as in play — an on-demand learner
        would wait for it. The bus drops whichever copy arrives second, so nothing is
        trained twice; a group that was still playing on a live worker is played twice."""
        for group_id, result in list(self.pending.items()):
            result.forget()
            self.pending[group_id] = self.app.send_task(TASK_NAME, args=self.args[group_id])
        log.warning("%s: %d groups in play sent again", reason, len(self.pending))
        return len(self.pending)

    def _wanted(self, bus: BusStats) -> int:
        """Groups to dispatch now.

        ahead:     max_ahead − (in play + on the bus, not yet committed)
        on_demand: demand − (in play + on the bus, not yet delivered), where demand is
                   what the learner still waits for this step (a step's worth before it
                   has said anything, so that the first rollouts overlap its start-up)."""
        in_play = len(self.pending)
        if self.mode == "ahead":
            return self.max_ahead - in_play - bus.queued
        demand = self.run.learner.groups_per_step if bus.demand is None else bus.demand
        return demand - in_play - (bus.queued - bus.pending)

    def _collect(self) -> None:
        done = [gid for gid, result in self.pending.items() if result.ready()]
        with open(self.log_path, "a") as out:
            for gid in done:
                result = self.pending.pop(gid)
                self.args.pop(gid, None)
                self.stats.finished += 1
                if result.successful():
                    summary = result.result
                    self.stats.sent += bool(summary.get("sent"))
                    self.stats.no_signal += bool(summary.get("no_signal"))
                    self.stats.parked += bool(summary.get("parked"))
                    self.stats.episode_errors += len(summary.get("errors", []))
                    self.stats.seconds += summary.get("seconds", 0.0)
                    record = {"time": round(time.time(), 3), **summary}
                else:
                    self.stats.failed_tasks += 1
                    record = {"time": round(time.time(), 3), "group_id": gid, "failed": repr(result.result)}
                    log.error("rollout task for %s failed: %r", gid, result.result)
                self.stats.recent = (self.stats.recent + [record])[-50:]
                out.write(json.dumps(record) + "\n")
                result.forget()

    def cancel(self) -> None:
        """Revoke what has not started; workers are stopped by the caller.

        Best effort: on Ctrl-C the terminal's SIGINT may already have stopped an
        embedded Redis, and then there is nothing left to revoke."""
        try:
            for result in self.pending.values():
                result.revoke()
            self.app.control.purge()
        except (redis.RedisError, OSError) as exc:
            log.info("could not revoke pending rollouts: %s", exc)
        self.pending.clear()
        self.args.clear()


def dispatch_mode(run: RunConfig) -> str:
    """`rollout.dispatch` with `auto` resolved: on one machine the learner and the
    rollouts share the cores, so they take turns; on a cluster they overlap."""
    mode = run.rollout.dispatch
    if mode == "auto":
        return "on_demand" if run.stack.mode == "local" else "ahead"
    return mode


def ledger(run: RunConfig, trained: list[str]) -> dict:
    """Groups produced vs trained: every produced group is trained once, or
    accounted for (dead-lettered with a reason, skipped, or still queued). Groups a
    worker played and did not send (no learning signal) are counted apart: `discarded`."""
    client = redis.Redis.from_url(run.redis.url, socket_timeout=run.redis.socket_timeout_s)
    bus = RedisReceiver(client, run.bus, name="ledger")
    produced = bus.produced_ids()
    committed = bus.committed_ids()
    dead = {gid for gid, _ in bus.dead_letters(count=100_000)}
    queued = bus.queued_ids()
    trained_set = set(trained)
    return {
        "produced": len(produced),
        "trained": len(trained),
        "trained_twice": len(trained) - len(trained_set),
        "dead_lettered": len(dead),
        "committed_untrained": len(committed - trained_set),
        "queued": len(queued),
        "discarded": len(bus.discarded_ids()),
        "lost": len(produced - trained_set - dead - committed - queued),
        "trained_unknown": len(trained_set - produced),
    }

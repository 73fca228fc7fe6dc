"""The durable trajectory bus on Redis Streams.

Keys (all under `BusConfig.prefix`, written P below):

    P:stream     the stream of TrajectoryGroup entries {gid, data}
    P:dlq        dead-letter stream {gid, reason, data, entry}
    P:produced   set of group ids ever accepted (producer-side dedup)
    P:committed  set of group ids ever committed (consumer-side ledger)
    P:stats      hash of counters (see BusStats)
    P:demand     "groups held" last announced by the consumer (see announce_demand)
    P:partial    parked partial rollouts, group id → PartialGroup (partials.py)

Guarantees, and how:
* nothing lost: a consumer acknowledges (XACK) only in `commit`, after its
  training step is durable; entries a dead consumer held are reclaimed
  (XPENDING IDLE, then XCLAIM) once idle for `claim_idle_ms`; a restarted consumer first re-reads
  its own pending entries.
* nothing twice: `send` is one Lua script (check P:produced, XADD, SADD), so
  a retried send of the same group id is dropped atomically; `commit` is one
  script (XACK, XDEL, SADD P:committed), and `receive` skips entries whose id
  is already committed.
* backpressure without loss: committed entries are deleted (XDEL), so XLEN
  counts exactly the groups not yet committed; `send` waits while XLEN >=
  max_len. Nothing is ever trimmed.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterator

import redis
from google.protobuf.message import DecodeError

from outrider.config.common import BusConfig
from outrider.proto.v1.trajectory_pb2 import TrajectoryGroup
from outrider.transport.base import (
    BusStats,
    BusTimeout,
    CommitResult,
    Delivery,
    TrajectoryReceiver,
    TrajectorySender,
)
from outrider.transport.validate import group_problem

log = logging.getLogger(__name__)

# Errors after which the same command may simply be retried: the server is
# restarting, loading its append-only file, or the connection dropped.
RETRYABLE = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, redis.exceptions.TryAgainError)

_SEND = """
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[3], 'duplicates_dropped', 1)
  return 'DUP'
end
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return 'FULL'
end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'produced', 1)
return redis.call('XADD', KEYS[1], '*', 'gid', ARGV[1], 'data', ARGV[2])
"""

# A discarded id joins its own set, not `produced`: a retried task that does find a signal
# may still send its group (it was never on the bus, so it cannot be trained twice).
_DISCARD = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 or redis.call('SADD', KEYS[2], ARGV[1]) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[3], 'discarded', 1)
return 1
"""

_COMMIT = """
local fresh = {}
local acked = 0
for i = 2, #ARGV, 2 do
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  redis.call('XDEL', KEYS[1], ARGV[i])
  if redis.call('SADD', KEYS[2], ARGV[i + 1]) == 1 then
    table.insert(fresh, ARGV[i + 1])
  else
    redis.call('HINCRBY', KEYS[3], 'commit_duplicates', 1)
  end
end
redis.call('HINCRBY', KEYS[3], 'committed', #fresh)
-- The acked entries leave `pending`; they leave the announced `held` with it, so that
-- demand = groups - (pending - held) is the same before and after a commit.
local demand = redis.call('GET', KEYS[4])
if demand and acked > 0 then
  local groups, held = string.match(demand, '^(%d+) (%d+)$')
  if groups then
    redis.call('SET', KEYS[4], groups .. ' ' .. math.max(0, tonumber(held) - acked))
  end
end
return fresh
"""

# Dead-letter one entry: copy it with the reason, then remove it for good.
_DEAD_LETTER = """
redis.call('XADD', KEYS[2], '*', 'gid', ARGV[3], 'reason', ARGV[4], 'data', ARGV[5], 'entry', ARGV[2])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[3], 'dead_lettered', 1)
return 1
"""


class BusKeys:
    def __init__(self, prefix: str):
        self.stream = f"{prefix}:stream"
        self.dead_letter = f"{prefix}:dlq"
        self.produced = f"{prefix}:produced"
        self.committed = f"{prefix}:committed"
        self.stats = f"{prefix}:stats"
        self.demand = f"{prefix}:demand"
        self.partial = f"{prefix}:partial"
        self.discarded = f"{prefix}:discarded"

    def all(self) -> list[str]:
        return [self.stream, self.dead_letter, self.produced, self.committed, self.stats, self.demand, self.partial, self.discarded]


def _retrying(call: Callable, cfg: BusConfig, what: str, deadline: float | None = None):
    """Run `call`, retrying connection-level errors with exponential backoff."""
    delay = cfg.retry_backoff_s
    while True:
        try:
            return call()
        except RETRYABLE as exc:
            if deadline is not None and time.monotonic() + delay > deadline:
                raise BusTimeout(f"{what}: Redis unreachable until the deadline ({exc})") from exc
            log.warning("%s: %s; retrying in %.1f s", what, exc.__class__.__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


class _RedisBus:
    """What sender and receiver share: the client, keys, scripts, counters."""

    def __init__(self, client: redis.Redis, cfg: BusConfig):
        self.client = client
        self.cfg = cfg
        self.keys = BusKeys(cfg.prefix)
        self._send_script = client.register_script(_SEND)
        self._commit_script = client.register_script(_COMMIT)
        self._dead_letter_script = client.register_script(_DEAD_LETTER)
        self._discard_script = client.register_script(_DISCARD)

    def stats(self) -> BusStats:
        def read():
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(self.keys.stats)
            pipe.xlen(self.keys.stream)
            pipe.get(self.keys.demand)
            return pipe.execute()

        counters, queued, demand = _retrying(read, self.cfg, "stats")
        values = {k.decode(): int(v) for k, v in counters.items()}
        pending = 0
        try:
            pending = int(_retrying(lambda: self.client.xpending(self.keys.stream, self.cfg.consumer_group), self.cfg, "stats")["pending"])
        except redis.ResponseError:
            pass  # no consumer group yet: nothing is pending
        if demand is not None:
            groups, held = (int(v) for v in demand.split())
            # A commit lowers `pending` and `held` together (the commit script), so the
            # demand announced for the next step before a checkpoint commits this one's
            # groups stays right; a consumer that wants nothing wants nothing.
            values["demand"] = max(0, groups - max(0, pending - held))
        return BusStats(queued=queued, pending=pending, **values)

    def dead_letters(self, count: int = 100) -> list[tuple[str, str]]:
        """(group id, reason) of the oldest dead-lettered entries."""
        entries = self.client.xrange(self.keys.dead_letter, count=count)
        return [(f[b"gid"].decode(), f[b"reason"].decode()) for _, f in entries]

    def committed_ids(self) -> set[str]:
        return {m.decode() for m in self.client.smembers(self.keys.committed)}

    def produced_ids(self) -> set[str]:
        return {m.decode() for m in self.client.smembers(self.keys.produced)}

    def discarded_ids(self) -> set[str]:
        return {m.decode() for m in self.client.smembers(self.keys.discarded)}

    def queued_ids(self) -> set[str]:
        """Group ids on the stream: sent and not yet committed (delivered or not)."""
        return {gid for _, gid in self._stream_entries()}

    def _stream_entries(self) -> Iterator[tuple[str, str]]:
        """(entry id, group id) of every entry on the stream, oldest first, 500 per XRANGE.
        The stream holds only uncommitted entries (at most ~max_len), so a scan is cheap."""
        start = "-"
        while True:
            page = _retrying(lambda: self.client.xrange(self.keys.stream, start, "+", count=500), self.cfg, "scan")
            for entry_id, fields in page:
                yield entry_id.decode(), fields.get(b"gid", b"").decode(errors="replace")
            if len(page) < 500:
                return
            start = "(" + page[-1][0].decode()

    def delete(self) -> None:
        """Remove every key of this bus (tests and `outrider` run cleanup)."""
        self.client.delete(*self.keys.all())


class RedisSender(_RedisBus, TrajectorySender):
    def send(self, group: TrajectoryGroup) -> bool:
        if not group.group_id:
            raise ValueError("TrajectoryGroup.group_id must be set (it is the idempotency key)")
        data = group.SerializeToString()
        deadline = time.monotonic() + self.cfg.send_timeout_s if self.cfg.send_timeout_s else None
        keys = [self.keys.stream, self.keys.produced, self.keys.stats]
        args = [group.group_id, data, self.cfg.max_len]
        wait = 0.01
        while True:
            reply = _retrying(lambda: self._send_script(keys=keys, args=args), self.cfg, "send", deadline)
            if reply == b"DUP":
                return False
            if reply != b"FULL":
                return True
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BusTimeout(f"send: bus full ({self.cfg.max_len} groups uncommitted) until the deadline")
                wait = min(wait, remaining)
            time.sleep(wait)
            wait = min(wait * 2, 0.5)

    def discard(self, group_id: str) -> bool:
        if not group_id:
            raise ValueError("a discarded group needs its group_id (it is the idempotency key)")
        keys = [self.keys.produced, self.keys.discarded, self.keys.stats]
        return bool(_retrying(lambda: self._discard_script(keys=keys, args=[group_id]), self.cfg, "discard"))


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class RedisReceiver(_RedisBus, TrajectoryReceiver):
    """Reads through a consumer group. Give a restarted consumer the same `name`
    to get its unfinished deliveries back at once instead of after claim_idle_ms."""

    def __init__(
        self,
        client: redis.Redis,
        cfg: BusConfig,
        name: str | None = None,
        validate: Callable[[TrajectoryGroup], str | None] = group_problem,
    ):
        super().__init__(client, cfg)
        self.name = name or default_consumer_name()
        self.validate = validate
        self._own_pending_done = False
        self._next_claim = 0.0
        self._ensure_group()

    def _ensure_group(self) -> None:
        try:
            _retrying(
                lambda: self.client.xgroup_create(self.keys.stream, self.cfg.consumer_group, id="0", mkstream=True),
                self.cfg,
                "create consumer group",
            )
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def receive(self, max_groups: int, block_s: float | None = None) -> list[Delivery]:
        if max_groups < 1:
            raise ValueError(f"max_groups must be >= 1, got {max_groups}")
        deliveries: list[Delivery] = []
        if not self._own_pending_done:
            deliveries += self._read_own_pending(max_groups)
        if len(deliveries) < max_groups and time.monotonic() >= self._next_claim:
            deliveries += self._reclaim(max_groups - len(deliveries))
        if len(deliveries) < max_groups:
            block_ms = self.cfg.block_ms if block_s is None else int(block_s * 1000)
            # Don't block when we already have something to hand back.
            deliveries += self._read_new(max_groups - len(deliveries), None if deliveries else block_ms)
        return self._drop_committed(deliveries)

    def _read_own_pending(self, count: int) -> list[Delivery]:
        reply = self._xreadgroup("0", count, None)
        entries = reply[0][1] if reply else []
        if len(entries) < count:
            self._own_pending_done = True
        return self._decode(entries, redelivered=True)

    def _reclaim(self, count: int) -> list[Delivery]:
        # Scanning the pending list every call would be wasted work: a group
        # becomes reclaimable only after claim_idle_ms, so look 4x as often.
        self._next_claim = time.monotonic() + self.cfg.claim_idle_ms / 4000
        idle = _retrying(
            lambda: self.client.xpending_range(
                self.keys.stream,
                self.cfg.consumer_group,
                "-",
                "+",
                max(4 * count, 100),
                idle=self.cfg.claim_idle_ms,
            ),
            self.cfg,
            "reclaim",
        )
        # Our own idle entries are in flight in this process: never take them
        # from ourselves (that would hand the same group out twice).
        candidates = [e for e in idle if e["consumer"].decode() != self.name][:count]
        if not candidates:
            return []
        times = {e["message_id"].decode(): int(e["times_delivered"]) + 1 for e in candidates}
        claimed = _retrying(
            lambda: self.client.xclaim(
                self.keys.stream, self.cfg.consumer_group, self.name, self.cfg.claim_idle_ms, list(times)
            ),
            self.cfg,
            "reclaim",
        )
        claimed = [entry for entry in claimed if entry[1]]
        if claimed:
            _retrying(lambda: self.client.hincrby(self.keys.stats, "reclaimed", len(claimed)), self.cfg, "reclaim")
            log.info("%s reclaimed %d groups from silent consumers", self.name, len(claimed))
        deliveries = []
        for delivery in self._decode(claimed, redelivered=True):
            if times[delivery.entry_id] > self.cfg.max_deliveries:
                self.reject(delivery, f"delivered {times[delivery.entry_id]} times without a commit")
            else:
                deliveries.append(delivery)
        return deliveries

    def _read_new(self, count: int, block_ms: int | None) -> list[Delivery]:
        reply = self._xreadgroup(">", count, block_ms)
        return self._decode(reply[0][1] if reply else [], redelivered=False)

    def _xreadgroup(self, start: str, count: int, block_ms: int | None):
        def call():
            try:
                return self.client.xreadgroup(
                    self.cfg.consumer_group, self.name, {self.keys.stream: start}, count=count, block=block_ms
                )
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # The server lost its data (restart without persistence):
                # recreate the group and read again.
                self._ensure_group()
                return []

        return _retrying(call, self.cfg, "receive")

    def _decode(self, entries, redelivered: bool) -> list[Delivery]:
        deliveries = []
        for entry_id, fields in entries:
            entry_id = entry_id.decode()
            if not fields:  # deleted after delivery; only its pending record is left
                self._ack_and_delete([entry_id])
                continue
            data = fields.get(b"data", b"")
            gid = fields.get(b"gid", b"").decode(errors="replace")
            group = TrajectoryGroup()
            try:
                group.ParseFromString(data)
            except DecodeError as exc:
                self._dead_letter(entry_id, gid, data, f"malformed protobuf: {exc}")
                continue
            problem = self.validate(group) if group.group_id == gid else f"entry gid {gid!r} != group_id {group.group_id!r}"
            if problem:
                self._dead_letter(entry_id, gid, data, problem)
                continue
            deliveries.append(Delivery(entry_id, group, len(data), redelivered))
        return deliveries

    def _drop_committed(self, deliveries: list[Delivery]) -> list[Delivery]:
        if not deliveries:
            return deliveries
        ids = [d.group.group_id for d in deliveries]
        flags = _retrying(lambda: self.client.smismember(self.keys.committed, ids), self.cfg, "receive")
        stale = [d for d, done in zip(deliveries, flags) if done]
        if stale:
            # Committed by someone else after our delivery started: ack, don't train.
            self._ack_and_delete([d.entry_id for d in stale])
        return [d for d, done in zip(deliveries, flags) if not done]

    def _ack_and_delete(self, entry_ids: list[str]) -> None:
        def call():
            # XACK and XDEL of entries already gone are no-ops: safe to repeat.
            pipe = self.client.pipeline(transaction=True)
            pipe.xack(self.keys.stream, self.cfg.consumer_group, *entry_ids)
            pipe.xdel(self.keys.stream, *entry_ids)
            return pipe.execute()

        _retrying(call, self.cfg, "acknowledge")

    def commit(self, deliveries: list[Delivery]) -> CommitResult:
        return self._commit_entries([(d.entry_id, d.group.group_id) for d in deliveries])

    def commit_group_ids(self, group_ids: list[str]) -> CommitResult:
        wanted = set(group_ids)
        found: list[tuple[str, str]] = []
        # A scan of the stream; it happens once per restart.
        for entry_id, gid in self._stream_entries() if wanted else ():
            if gid in wanted:
                found.append((entry_id, gid))
                wanted.discard(gid)
                if not wanted:
                    break
        return self._commit_entries(found)

    def _commit_entries(self, entries: list[tuple[str, str]]) -> CommitResult:
        """Run the commit script on (entry id, group id) pairs."""
        if not entries:
            return CommitResult()
        args: list[str] = [self.cfg.consumer_group]
        for entry_id, gid in entries:
            args += [entry_id, gid]
        keys = [self.keys.stream, self.keys.committed, self.keys.stats, self.keys.demand]
        fresh = {m.decode() for m in _retrying(lambda: self._commit_script(keys=keys, args=args), self.cfg, "commit")}
        ids = [gid for _, gid in entries]
        return CommitResult(committed=[g for g in ids if g in fresh], duplicates=[g for g in ids if g not in fresh])

    def extend_lease(self, deliveries: list[Delivery]) -> None:
        if deliveries:
            # Claiming our own entries with min-idle 0 resets their idle time.
            entry_ids = [d.entry_id for d in deliveries]
            _retrying(
                lambda: self.client.xclaim(self.keys.stream, self.cfg.consumer_group, self.name, 0, entry_ids, justid=True),
                self.cfg,
                "extend lease",
            )

    def announce_demand(self, groups: int, held: int) -> None:
        if groups < 0 or held < 0:
            raise ValueError(f"demand needs groups >= 0 and held >= 0, got {groups} and {held}")
        _retrying(lambda: self.client.set(self.keys.demand, f"{groups} {held}"), self.cfg, "announce demand")

    def reject(self, delivery: Delivery, reason: str) -> None:
        self._dead_letter(delivery.entry_id, delivery.group.group_id, delivery.group.SerializeToString(), reason)

    def _dead_letter(self, entry_id: str, gid: str, data: bytes, reason: str) -> None:
        log.warning("dead-lettering %s (group %r): %s", entry_id, gid, reason)
        keys = [self.keys.stream, self.keys.dead_letter, self.keys.stats]
        args = [self.cfg.consumer_group, entry_id, gid, reason, data]
        _retrying(lambda: self._dead_letter_script(keys=keys, args=args), self.cfg, "dead-letter")

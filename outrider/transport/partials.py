"""The park of partial rollouts: groups whose long completions wait for newer weights.

Key `P:partial` (P = `BusConfig.prefix`): a hash group id → PartialGroup bytes
(trajectory.proto; outrider/rollout/partial.py says what a parked group holds).

* `park` is one Lua script: a group already on the bus (P:produced) is never parked
  again; a group already parked is overwritten (a resumed group parked once more); a
  new one is parked only while fewer than `limit` are, so that the park never holds
  more than a bounded amount of waiting work.
* a group leaves the park when the worker that finished it has sent it to the bus
  (`remove`); one that died in between leaves an entry whose id P:produced already
  holds, and `parked` / `load` drop such entries instead of handing them out.
"""

from __future__ import annotations

import abc

import redis
from google.protobuf.message import DecodeError

from outrider.config.common import BusConfig
from outrider.proto.v1.trajectory_pb2 import PartialGroup
from outrider.transport.base import BusError
from outrider.transport.redis_streams import BusKeys, _retrying

_PARK = """
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return 'PRODUCED'
end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return 'FULL'
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 'PARKED'
"""


class PartialStore(abc.ABC):
    """Where rollout workers keep groups between the segments of their completions."""

    @abc.abstractmethod
    def park(self, group: PartialGroup, limit: int) -> bool:
        """Store (or update) `group`; False when `limit` other groups are parked already, or
        when the group is on the bus already (then there is nothing left to continue)."""

    @abc.abstractmethod
    def load(self, group_id: str) -> PartialGroup | None:
        """The parked state of `group_id`; None when it is not parked (or already sent)."""

    @abc.abstractmethod
    def remove(self, group_id: str) -> None:
        """Forget a group (it has been sent to the bus)."""

    @abc.abstractmethod
    def parked(self) -> list[PartialGroup]:
        """Every parked group not yet on the bus."""


class RolloutPark(PartialStore):
    def __init__(self, client: redis.Redis, cfg: BusConfig):
        self.client = client
        self.cfg = cfg
        self.keys = BusKeys(cfg.prefix)
        self._park_script = client.register_script(_PARK)

    def park(self, group: PartialGroup, limit: int) -> bool:
        if not group.group_id:
            raise ValueError("PartialGroup.group_id must be set")
        if limit < 1:
            raise ValueError(f"park limit must be >= 1, got {limit}")
        keys = [self.keys.partial, self.keys.produced]
        args = [group.group_id, group.SerializeToString(), limit]
        reply = _retrying(lambda: self._park_script(keys=keys, args=args), self.cfg, "park")
        return reply == b"PARKED"

    def load(self, group_id: str) -> PartialGroup | None:
        data = _retrying(lambda: self.client.hget(self.keys.partial, group_id), self.cfg, "load parked group")
        if data is None:
            return None
        group = self._decode(group_id, data)
        return None if self._drop_produced([group]) else group

    def remove(self, group_id: str) -> None:
        _retrying(lambda: self.client.hdel(self.keys.partial, group_id), self.cfg, "unpark")

    def parked(self) -> list[PartialGroup]:
        entries = _retrying(lambda: self.client.hgetall(self.keys.partial), self.cfg, "list parked groups")
        groups = [self._decode(gid.decode(), data) for gid, data in entries.items()]
        produced = set(self._drop_produced(groups))
        return [g for g in groups if g.group_id not in produced]

    def _drop_produced(self, groups: list[PartialGroup]) -> list[str]:
        """Delete (and return the ids of) the groups the bus already holds."""
        if not groups:
            return []
        flags = self.client.smismember(self.keys.produced, [g.group_id for g in groups])
        sent = [g.group_id for g, on_bus in zip(groups, flags) if on_bus]
        if sent:
            self.client.hdel(self.keys.partial, *sent)
        return sent

    def _decode(self, group_id: str, data: bytes) -> PartialGroup:
        try:
            group = PartialGroup.FromString(data)
        except DecodeError as exc:
            raise BusError(f"{self.keys.partial}[{group_id!r}]: not a PartialGroup: {exc}") from exc
        if group.group_id != group_id:
            raise BusError(f"{self.keys.partial}[{group_id!r}] holds group {group.group_id!r}")
        return group

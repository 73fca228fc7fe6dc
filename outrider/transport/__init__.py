"""The trajectory bus: rollout workers send TrajectoryGroups, the learner receives them.

Service code uses `TrajectorySender` / `TrajectoryReceiver` and never calls
Redis commands itself: commit and dedup stay atomic in the bus's Lua scripts.
"""

from outrider.transport.base import (
    BusError,
    BusStats,
    BusTimeout,
    CommitResult,
    Delivery,
    TrajectoryReceiver,
    TrajectorySender,
)
from outrider.transport.embedded import RedisHandle, open_redis, start_embedded
from outrider.transport.partials import PartialStore, RolloutPark
from outrider.transport.persistence import Persistence
from outrider.transport.redis_streams import RedisReceiver, RedisSender
from outrider.transport.validate import group_problem

__all__ = [
    "BusError",
    "BusStats",
    "BusTimeout",
    "CommitResult",
    "Delivery",
    "PartialStore",
    "Persistence",
    "RedisHandle",
    "RedisReceiver",
    "RedisSender",
    "RolloutPark",
    "TrajectoryReceiver",
    "TrajectorySender",
    "group_problem",
    "open_redis",
    "start_embedded",
]

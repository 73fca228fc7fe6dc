"""A stand-alone bus consumer process for crash tests.

    python -m testkit.bus_consumer URL PREFIX NAME LEDGER [--pause-after N] [--claim-idle-ms MS] [--total T]

Loops receive -> commit, appending each committed group id to LEDGER (a
text file, one id per line, fsynced). With --pause-after N it stops after N
batches *between receive and commit* and writes the ids it holds to
LEDGER.holding, so a test can SIGKILL it while it holds uncommitted groups.
Exits when the bus has committed --total groups.
"""

from __future__ import annotations

import argparse
import os
import time

import redis

from outrider.config import BusConfig
from outrider.transport import RedisReceiver


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("prefix")
    parser.add_argument("name")
    parser.add_argument("ledger")
    parser.add_argument("--pause-after", type=int, default=0)
    parser.add_argument("--claim-idle-ms", type=int, default=1000)
    parser.add_argument("--total", type=int, required=True)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()

    cfg = BusConfig(prefix=args.prefix, block_ms=100, claim_idle_ms=args.claim_idle_ms)
    receiver = RedisReceiver(redis.Redis.from_url(args.url), cfg, name=args.name)
    batches = 0
    with open(args.ledger, "a") as ledger:
        while receiver.stats().committed < args.total:
            deliveries = receiver.receive(args.batch)
            if not deliveries:
                continue
            batches += 1
            if args.pause_after and batches > args.pause_after:
                # The ids it holds, written whole before the marker appears (rename is atomic).
                with open(args.ledger + ".holding.tmp", "w") as marker:
                    marker.write("".join(d.group.group_id + "\n" for d in deliveries))
                os.replace(args.ledger + ".holding.tmp", args.ledger + ".holding")
                time.sleep(3600)  # the "training step" that never finishes
            result = receiver.commit(deliveries)
            for group_id in result.committed:
                ledger.write(group_id + "\n")
            ledger.flush()
            os.fsync(ledger.fileno())


if __name__ == "__main__":
    main()

"""Chaos: SIGKILL every part of a real `outrider train` in turn; the run finishes and
every group is trained exactly once or accounted for.

The run is the tiny model on the toy `vowels` task (tests/testkit/e2e.py). Between
two kills the learner must have made one more step, so each kill lands on a run that
recovered from the previous one, and mid-run (rollouts in flight, the learner
waiting, checkpointing or publishing).

The oracle is this file's own: it reads Redis (the run's append-only file, served
again by a valkey-server of its own after the run) and the checkpoint's state JSON
with plain commands, never the ledger code of `outrider train`.

Words, for one group id:
* dispatched: the dispatcher took an id `<run>-g<seq>` from `<run>:dispatch-seq`
  (seq 1..N) and sent a Celery task for it.
* produced: the bus accepted it (`<prefix>:produced`, the set the send script adds
  to together with the XADD); from then on a trajectory group exists and must not
  vanish.
* trained: in `trained_group_ids` of the last complete checkpoint (its weights
  contain the group's update).
* accounted for without training: dead-lettered (`<prefix>:dlq`, with a reason: here
  only "stale", groups the restarted policy sampled with the initial weights);
  committed untrained (the learner skipped it: too few valid episodes, e.g. the env
  service died under them; the worker's record lists the episode errors, or has no
  "sent" because the worker died while playing it); still queued on the stream (produced after
  the learner's last step).
* lost: produced and none of the above. Must be 0.
* trained twice: an id more than once in `trained_group_ids`. Must be 0.
A dispatched id that was never produced carries no trajectories and so cannot be lost
in that sense; the test still checks each one has a reason (its task failed, its
group had no learning signal and was discarded, too few episodes succeeded to send
it (its record lists the episode errors), or it was in play when the run ended: at
most one step's worth, the most the on-demand dispatcher keeps in play).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
import redis

from outrider.transport import start_embedded
from testkit.e2e import descendants, finish_train, run_metrics, toy_run_config, train_process

pytestmark = pytest.mark.slow

GROUPS_PER_STEP = 4
MAX_STEPS = 8
VICTIMS = {
    # name in summary["restarts"] -> what its command line contains
    "rollout-worker-0": "rollout0@",
    "learner": "torch.distributed.run",
    "policy": "outrider.services.policy.main",
    "env": "outrider.services.env.main",
    "redis": "valkey-server",
}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def _max_step(run_dir: Path) -> int:
    return max((m["step"] for m in run_metrics(run_dir)), default=0)


def _wait_step(run_dir: Path, step: int, process, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while _max_step(run_dir) < step:
        assert process.poll() is None, process.stdout.read()[-5000:]
        assert time.monotonic() < deadline, f"no step {step} within {timeout} s"
        time.sleep(0.5)


def _kill(name: str, root: int) -> int:
    pid = next(p for p in descendants(root) if VICTIMS[name] in _cmdline(p))
    if name == "learner":
        os.killpg(pid, signal.SIGKILL)  # torchrun and its rank
    else:
        os.kill(pid, signal.SIGKILL)
    return pid


def _bus_records(run_dir: Path, run_name: str) -> dict:
    """Every record of the run's Redis that the oracle reads, from its append-only file."""
    server = start_embedded(data_dir=run_dir / "redis", persistence=True)
    try:
        client = redis.Redis.from_url(server.connection_url)
        prefix = f"{run_name}:bus"  # `outrider train` puts a run's bus under `<name>:bus`
        members = lambda key: {m.decode() for m in client.smembers(key)}  # noqa: E731
        return {
            "dispatched": int(client.get(f"{run_name}:dispatch-seq") or 0),
            "produced": members(f"{prefix}:produced"),
            "committed": members(f"{prefix}:committed"),
            "discarded": members(f"{prefix}:discarded"),
            "dead": {f[b"gid"].decode(): f[b"reason"].decode() for _, f in client.xrange(f"{prefix}:dlq")},
            "queued": [f[b"gid"].decode() for _, f in client.xrange(f"{prefix}:stream")],
        }
    finally:
        server.stop()


def _trained(run_dir: Path) -> list[str]:
    root = run_dir / "checkpoints"
    tag = (root / "LATEST").read_text().strip()
    states = {p.stem: json.loads(p.read_text()) for p in (root / "state").glob("step-*.json")}
    latest = states[tag]
    for other in states.values():
        # An earlier checkpoint's weights contain a prefix of the later one's groups.
        assert latest["trained_group_ids"][: len(other["trained_group_ids"])] == other["trained_group_ids"]
    return latest["trained_group_ids"]


def test_sigkill_of_each_component_loses_no_group_and_trains_none_twice(tmp_path):
    config = toy_run_config(tmp_path, "chaos", learner={"max_steps": MAX_STEPS, "groups_per_step": GROUPS_PER_STEP})
    process = train_process(config)
    run_dir = tmp_path / "runs" / "chaos"
    killed = {}
    try:
        step = 2
        for name in VICTIMS:
            _wait_step(run_dir, step, process)
            killed[name] = _kill(name, process.pid)
            step = _max_step(run_dir) + 1  # the next kill waits for a step after this one
        output = finish_train(process, timeout=900)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, output[-5000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    # Each victim died of our SIGKILL first (a knock-on exit would be listed after it:
    # a Celery 5.7 worker exits 1 when its broker connection drops, and is restarted).
    assert {name: exits[0] for name, exits in summary["restarts"].items() if name in VICTIMS} == dict.fromkeys(VICTIMS, -9), (
        summary["restarts"], output[-5000:])
    # The supervisor names each dead service and how it died (a warning on the run's stderr).
    for name in ("policy", "env"):
        assert re.search(rf"service '{name}' \(pid {killed[name]}\) stopped: killed by signal 9; log: .*; restarting it", output), output[-5000:]
    assert re.search(r"embedded Redis \(127\.0\.0\.1:\d+\) stopped: killed by signal 9; restarting it", output), output[-5000:]
    assert _max_step(run_dir) == MAX_STEPS
    print(json.dumps({"kills": killed, "restarts": summary["restarts"], **check_exactly_once(run_dir, "chaos")}))


def check_exactly_once(run_dir: Path, run_name: str) -> dict:
    """The oracle (module docstring); returns the counts it found."""
    trained = _trained(run_dir)
    bus = _bus_records(run_dir, run_name)
    produced, committed, dead, queued = bus["produced"], bus["committed"], bus["dead"], set(bus["queued"])
    records: dict[str, dict] = {}
    for line in (run_dir / "rollouts.jsonl").read_text().splitlines():
        record = json.loads(line)
        records.setdefault(record["group_id"], {}).update({k: v for k, v in record.items() if v})

    # Nothing lost.
    committed_untrained = committed - set(trained)
    lost = produced - set(trained) - set(dead) - committed_untrained - queued
    assert lost == set(), sorted(lost)
    # Nothing trained twice; a full step of distinct groups per step, all produced and committed.
    assert sorted(gid for gid in set(trained) if trained.count(gid) > 1) == []
    assert len(trained) == MAX_STEPS * GROUPS_PER_STEP, trained
    assert set(trained) <= produced and set(trained) <= committed
    # Each way out of the bus without training has its reason.
    assert all(reason.startswith("stale: ") for reason in dead.values()), dead
    for gid in committed_untrained:
        record = records.get(gid, {})
        assert record.get("errors") or not record.get("sent"), (gid, record)
    # The dispatcher's own record agrees with the bus: a group a worker reports sent was produced.
    assert {gid for gid, r in records.items() if r.get("sent")} <= produced
    # Dispatched ids never produced: each explained, and the unexplained ones fit in one step in play.
    ids = [f"{run_name}-g{seq:07d}" for seq in range(1, bus["dispatched"] + 1)]
    unproduced = [gid for gid in ids if gid not in produced]
    explained = {gid for gid in unproduced if gid in bus["discarded"] or "failed" in records.get(gid, {})
                 or records.get(gid, {}).get("errors")}
    unexplained = sorted(set(unproduced) - explained)
    assert len(unexplained) <= GROUPS_PER_STEP, [(gid, records.get(gid)) for gid in unexplained]
    return {"dispatched": len(ids), "produced": len(produced), "trained": len(trained), "dead_lettered": len(dead),
            "committed_untrained": len(committed_untrained), "queued": len(queued), "unproduced": len(unproduced),
            "unproduced_unexplained": len(unexplained)}

"""The learner's watchdog: a learner stuck where no deadline reaches ends with a named error,
and `outrider train`'s supervisor (processes.py) restarts it from its checkpoint.

Rank 1 of a two-rank learner is frozen (SIGSTOP: a hung GPU, a swapped-out node); rank 0
then waits in a collective for ever, which no deadline bounds. Its watchdog ends it after
`learner.stall_s`, torchrun takes rank 1 down, and the restarted learner trains the same
groups (they were never committed) to the end: nothing lost, nothing trained twice."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
import yaml

from outrider.learner.status import read_status
from outrider.train import processes
from testkit.e2e import descendants, wait_for_child
from testkit.learner import checkpoint_state, learnable_groups, produce_groups, write_run_config

pytestmark = pytest.mark.slow

STALL_S = 45.0  # above the learner's loading time on a loaded 2-core machine (no beats while loading)


def _rank(pid: int) -> str | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    if not any(b"outrider.learner.main" in part for part in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")):
        return None
    for item in environ:
        if item.startswith(b"RANK="):
            return item[5:].decode()
    return None


def test_a_learner_stuck_in_a_collective_is_named_ended_and_resumed(any_redis_url, bus_prefix, tmp_path):
    run_dir = tmp_path / "run"
    config = write_run_config(tmp_path / "run.yaml", run_dir, any_redis_url, bus_prefix,
                              {"ranks": 2, "max_steps": 2, "stall_s": STALL_S, "sync": {"mode": "none", "timeout_s": 1}})
    data = yaml.safe_load(config.read_text())
    data["redis"]["socket_timeout_s"] = 5  # the watchdog's limit must exceed every deadline
    config.write_text(yaml.safe_dump(data))
    logs = tmp_path / "logs"
    logs.mkdir()
    child = processes.learner(config, ranks=2, log_dir=logs, restarts=1, resume=False, run_dir=run_dir)
    child.start()
    stopped: int | None = None
    try:
        # Loaded and polling the bus (an empty bus is no stall: every poll is progress).
        wait_for_child(lambda: (read_status(run_dir) or {}).get("phase") == "waiting", 300, "the learner did not start", child)
        stopped = wait_for_child(lambda: next((p for p in descendants(child.pid) if _rank(p) == "1"), None), 30, "no rank 1", child)
        time.sleep(STALL_S / 3)
        assert child.exit_code() is None, "waiting on an empty bus was taken for a stall"
        os.kill(stopped, signal.SIGSTOP)
        produce_groups(any_redis_url, bus_prefix, learnable_groups(4))
        frozen_at = time.monotonic()
        code = wait_for_child(lambda: child.exit_code(), STALL_S + 120, "the stuck learner did not exit", child)
        ended_after = time.monotonic() - frozen_at
        log = child.log_path.read_text()
        found = re.search(r"learner: no progress for (\d+) s \(last: (.+?)\); stall limit 45 s; exiting with status 75", log)
        assert found, log[-4000:]
        assert STALL_S <= float(found[1]) < STALL_S + 5  # shown rounded to whole seconds
        # Its last progress: step 1's groups leaving rank 0, or the update they started.
        assert re.fullmatch(r"sending step 1's groups to the other ranks|update step 1 \(.*\)", found[2]), found[2]
        assert STALL_S < ended_after < STALL_S + 90, ended_after  # + torchrun taking the frozen rank down
        assert (read_status(run_dir) or {}).get("phase") == "stalled"
        # What the supervisor logs as it restarts it (torchrun itself exits 1).
        assert re.search(r"exit status \d+ after its watchdog found it stalled \(learner: no progress for \d+ s",
                         child.describe_exit()), child.describe_exit()
        assert not (run_dir / "checkpoints" / "LATEST").exists()  # the stuck step was never committed

        # The supervisor's restart: --resume, a fresh rank 1, the same groups from the bus.
        assert processes.restart(child, "--resume")
        assert child.exits == [code] and child.command[-1] == "--resume"
        assert wait_for_child(lambda: child.exit_code() is not None, 300, "the restarted learner did not finish", child) is True
        assert child.exit_code() == 0, child.log_path.read_text()[-4000:]
        state = checkpoint_state(run_dir)
        assert state["step"] == 2
        assert sorted(state["trained_group_ids"]) == sorted(g.group_id for g in learnable_groups(4))
    finally:
        if stopped is not None:
            try:
                os.kill(stopped, signal.SIGCONT)
            except ProcessLookupError:
                pass
        child.stop()
    print(json.dumps({"exit_code_after_stall": code, "ended_after_s": round(ended_after, 1)}))

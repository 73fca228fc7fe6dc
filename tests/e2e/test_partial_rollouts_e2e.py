"""Partial rollouts through `outrider train`: real services, Redis, Celery workers, DeepSpeed.

Completions of the toy task run to 24 tokens; the segment budget is 8, so nearly every
group is cut and parked in the step that starts it, and resumed by the next steps' newer
weights. The test keeps its own record, independent of the run's ledger: a reader of the
bus stream (XREAD blocks on the stream and is answered as each group is added, long
before the learner can train and delete it), and the checkpoint's list of trained groups.
From those it checks that groups were resumed on newer weights, that every segment
carries its own version, that nothing is lost or trained twice, and that the learner's
importance correction saw exactly the per-token lags the trajectories imply.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import uuid
from pathlib import Path

import pytest
import redis

from outrider.learner.checkpoint import latest_tag
from outrider.proto.v1.trajectory_pb2 import TrajectoryGroup
from testkit.e2e import run_metrics, toy_run_config, train_process

pytestmark = pytest.mark.slow

SEGMENT, MAX_TOKENS, GROUPS, STEPS = 8, 24, 2, 3


class StreamTap(threading.Thread):
    """Every entry ever added to one Redis stream, in order (gid, TrajectoryGroup)."""

    def __init__(self, url: str, key: str):
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.key = key
        self.entries: list[tuple[str, TrajectoryGroup]] = []
        self.last = "0-0"
        self.done = threading.Event()

    def read(self, block_ms: int | None) -> None:
        for _, entries in self.client.xread({self.key: self.last}, count=100, block=block_ms) or []:
            for entry_id, fields in entries:
                self.entries.append((fields[b"gid"].decode(), TrajectoryGroup.FromString(fields[b"data"])))
                self.last = entry_id.decode()

    def run(self) -> None:
        while not self.done.is_set():
            self.read(block_ms=100)

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=10)
        self.read(block_ms=None)


def _trained_ids(run_dir: Path) -> list[str]:
    root = run_dir / "checkpoints"
    tag = latest_tag(root)
    return json.loads((root / "state" / f"{tag}.json").read_text())["trained_group_ids"]


@pytest.fixture
def run_name(embedded_redis_url):
    """A run name of its own on the session's Redis; its keys (bus, park, Celery) go afterwards."""
    name = f"partial-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(embedded_redis_url)
    for key in client.scan_iter(match=f"{name}:*"):
        client.delete(key)


def test_long_completions_are_parked_resumed_on_newer_weights_and_trained_once(tmp_path, embedded_redis_url, run_name):
    name = run_name
    config = toy_run_config(
        tmp_path,
        name,
        redis={"url": embedded_redis_url},
        rollout={
            "group_size": 4,
            "dispatch": "on_demand",
            "sampling": {"max_tokens": MAX_TOKENS},
            "partial": {"segment_tokens": SEGMENT, "max_parks": 2},
        },
        learner={
            "max_steps": STEPS,
            "groups_per_step": GROUPS,
            "max_policy_lag": 2,
            "algorithm": {"transforms": [{"name": "tis_partial", "params": {"cap": 2.0}}]},
        },
    )
    tap = StreamTap(embedded_redis_url, f"{name}:bus:stream")
    tap.start()
    process = train_process(config)
    try:
        output, _ = process.communicate(timeout=900)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        tap.stop()
    assert process.returncode == 0, output[-5000:]
    run_dir = tmp_path / "runs" / name

    produced = [gid for gid, _ in tap.entries]
    groups = dict(tap.entries)
    trained = _trained_ids(run_dir)
    # Nothing twice: each group reached the bus once and was trained once, a full step each time.
    assert len(produced) == len(set(produced))
    assert len(trained) == len(set(trained)) == STEPS * GROUPS
    assert set(trained) <= set(produced), "the reader saw every trained group"
    # Nothing lost: every group on the bus was trained or is still there, uncommitted.
    client = redis.Redis.from_url(embedded_redis_url)
    queued = {f[b"gid"].decode() for _, f in client.xrange(f"{name}:bus:stream")}
    assert set(produced) - set(trained) <= queued
    # A group leaves the park once it is on the bus; what is left there was never sent.
    still_parked = {gid.decode() for gid in client.hkeys(f"{name}:bus:partial")}
    assert not still_parked & set(produced)
    episodes = [t.trajectory_id for gid in trained for t in groups[gid].trajectories]
    assert len(episodes) == len(set(episodes)) == STEPS * GROUPS * 4

    resumed = 0
    for gid in trained:
        for trajectory in groups[gid].trajectories:
            covered = set()
            for turn in trajectory.turns:
                assert turn.completion_length <= MAX_TOKENS
                covered |= set(range(turn.start, turn.start + turn.completion_length))
                if not turn.segments:
                    continue
                # Versions per segment: consecutive runs covering the completion, each within
                # the budget, the first one's the turn's version, never older than the last.
                versions = [s.policy_version for s in turn.segments]
                assert sum(s.length for s in turn.segments) == turn.completion_length
                assert all(1 <= s.length <= SEGMENT for s in turn.segments)
                assert versions[0] == turn.policy_version and versions == sorted(versions)
                resumed += versions[-1] > versions[0]
            # Every sampled token is in a turn and in the loss mask, the parked ones included.
            assert covered == {i for i, m in enumerate(trajectory.loss_mask) if m}
    assert resumed >= 1, "some completion was continued by newer weights after a park"

    # The learner's importance correction saw the per-token lags V − v_t of these
    # trajectories: step k trains the k-th GROUPS ids of the checkpoint's list with π_old at
    # version V = (policy_version after the step) − 1.
    metrics = run_metrics(run_dir)
    assert [m["step"] for m in metrics] == list(range(1, STEPS + 1))
    saw_a_lag = False
    for k, m in enumerate(metrics):
        version = int(m["policy_version"]) - 1
        lags = []
        for gid in trained[k * GROUPS : (k + 1) * GROUPS]:
            for trajectory in groups[gid].trajectories:
                for turn in trajectory.turns:
                    segments = [(s.length, s.policy_version) for s in turn.segments] or [(turn.completion_length, turn.policy_version)]
                    lags += [version - v for length, v in segments for _ in range(length)]
        expected = sum(lags) / len(lags)
        assert m["actor/rollout_lag_mean"] == pytest.approx(expected, rel=1e-5, abs=1e-6), k
        saw_a_lag = saw_a_lag or expected > 0
    assert saw_a_lag, "some step trained tokens sampled by older weights"

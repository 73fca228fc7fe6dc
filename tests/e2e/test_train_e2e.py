"""`outrider train` end to end: real services, Redis, Celery workers and DeepSpeed learner.

The task is the toy `vowels` environment (tests/testkit/toy_env.py) with the
character-level tiny random model, so that learning shows within minutes.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testkit.e2e import descendants, finish_train, run_metrics, toy_run_config, train_process

pytestmark = pytest.mark.slow


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def _wait_step(run_dir: Path, step: int, process, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not any(m["step"] >= step for m in run_metrics(run_dir)):
        assert process.poll() is None, process.stdout.read()[-5000:]
        assert time.monotonic() < deadline, f"no step {step} within {timeout} s"
        time.sleep(0.5)


def _group_rewards(run_dir: Path) -> dict[str, float]:
    records = [json.loads(line) for line in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    return {r["group_id"]: statistics.fmean(r["rewards"]) for r in records if r.get("rewards")}


def test_agent_learns_the_toy_task(tmp_path):
    config = toy_run_config(tmp_path, "learn", learner={"max_steps": 15})
    output = finish_train(train_process(config))
    assert "ledger: " in output and ", 0 lost" in output, output[-3000:]
    run_dir = tmp_path / "runs" / "learn"
    rewards = [m["reward_mean"] for m in run_metrics(run_dir)]
    assert len(rewards) == 15
    first, last = statistics.fmean(rewards[:5]), statistics.fmean(rewards[-5:])
    # Threshold from the baseline's own noise: the spread of group-mean rewards
    # in the first 5 steps (4 groups each) gives the standard error of a
    # 5-step mean; a policy that does not learn moves the mean by about that
    # much. Learning must move it by 6 standard errors of the difference, and
    # by at least 0.1 (out of 1).
    early = list(_group_rewards(run_dir).values())[:20]
    standard_error = statistics.stdev(early) / math.sqrt(len(early))
    margin = max(0.1, 6 * math.sqrt(2) * standard_error)
    assert last - first > margin, (first, last, margin)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["ledger"]["trained_twice"] == 0 and summary["ledger"]["lost"] == 0
    # The learner's last phase record (the progress lines between steps print it).
    status = json.loads((run_dir / "learner-status.json").read_text())
    assert (status["phase"], status["step"]) == ("done", 15)

    report = subprocess.run(
        [sys.executable, "-m", "outrider.cli.main", "report", str(run_dir)], capture_output=True, text=True, timeout=120
    )
    assert report.returncode == 0, report.stderr
    page = (run_dir / "report" / "index.html").read_text()
    for curve in ("reward_mean.png", "entropy.png", "actor_loss.png"):
        assert (run_dir / "report" / curve).stat().st_size > 1000 and curve in page
    assert "reward (first 3 → last 3 steps)" in page and "ledger" in page
    assert "wall_clock.png" in page and "Where the time went" in page and "Sample episodes" in page

    # Sample episodes: 4 per step (2 groups' best and worst), each reward one that the
    # rollout worker recorded for that group, the text decoded from real tokens.
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert sorted({s["step"] for s in samples}) == list(range(1, 16))
    assert all(sum(s["step"] == step for s in samples) == 4 for step in range(1, 16))
    recorded = {r["group_id"]: r["rewards"] for r in map(json.loads, (run_dir / "rollouts.jsonl").read_text().splitlines())}
    for sample in samples:
        assert any(abs(sample["reward"] - r) < 1e-6 for r in recorded[sample["group_id"]]), sample
        assert sample["prompt"] and sample["completion"]


def test_killed_worker_and_learner_lose_nothing_and_train_nothing_twice(tmp_path):
    config = toy_run_config(tmp_path, "faults", learner={"max_steps": 10})
    process = train_process(config)
    run_dir = tmp_path / "runs" / "faults"
    try:
        _wait_step(run_dir, 2, process)
        worker = next(p for p in descendants(process.pid) if "celery" in _cmdline(p) and "rollout0@" in _cmdline(p))
        os.kill(worker, signal.SIGKILL)
        _wait_step(run_dir, 5, process)
        learner = next(p for p in descendants(process.pid) if "torch.distributed.run" in _cmdline(p))
        os.killpg(learner, signal.SIGKILL)  # torchrun and its rank
        output = finish_train(process)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["restarts"] == {"rollout-worker-0": [-9], "learner": [-9]}, output[-3000:]
    ledger = summary["ledger"]
    assert ledger["lost"] == 0 and ledger["trained_twice"] == 0 and ledger["trained_unknown"] == 0, ledger
    assert ledger["trained"] == 10 * 4, "every step trained a full step of distinct groups"
    assert ledger["produced"] == ledger["trained"] + ledger["queued"] + ledger["dead_lettered"] + ledger["committed_untrained"]
    assert [m["step"] for m in run_metrics(run_dir)][-1] == 10


def test_ppo_with_a_value_critic_runs_and_the_critic_learns(tmp_path):
    learner = {
        "max_steps": 6,
        "critic": {"enabled": True, "optimizer": {"lr": 3e-3}},
        "algorithm": {"advantage": {"name": "gae", "params": {"gamma": 1.0, "lam": 0.95}}, "epochs": 2},
    }
    rollout = {"reward": {"steps": "env"}}
    config = toy_run_config(tmp_path, "ppo", learner=learner, rollout=rollout)
    output = finish_train(train_process(config))
    metrics = run_metrics(tmp_path / "runs" / "ppo")
    assert len(metrics) == 6, output[-3000:]
    losses = [m["critic/loss"] for m in metrics]
    assert statistics.fmean(losses[-2:]) < 0.5 * statistics.fmean(losses[:2]), losses


@pytest.mark.parametrize(
    ("override", "field", "message"),
    [
        ({"rollout": {"envs": ["vowelz"]}}, "rollout.envs[0]", "unknown environment 'vowelz'"),
        ({"learner": {"algorithm": {"advantage": {"name": "grpoo"}}}}, "learner.algorithm.advantage", "unknown advantage 'grpoo'"),
        ({"policy": {"model": "no-such-model"}}, "policy.model", "'no-such-model' is neither a built-in model"),
        ({"reward": {"prm": {"type": "scalar-head", "model": "runs/no-prm"}}}, "reward.prm.model",
         "'runs/no-prm' does not exist; train a PRM into it first: `outrider reward make-dataset"),
    ],
)
def test_a_bad_config_fails_before_anything_starts(tmp_path, override, field, message):
    config = toy_run_config(tmp_path, "bad", **override)
    started = time.monotonic()
    process = train_process(config)
    output = finish_train(process, timeout=60)
    assert process.returncode == 1
    assert f"{field}: " in output and message in output, output
    assert not (tmp_path / "runs" / "bad").exists(), "nothing was started"
    assert time.monotonic() - started < 30


def test_a_dying_service_is_named_and_the_run_stops_without_orphans(tmp_path):
    # With no restarts left (a service is restarted otherwise: tests/e2e/test_chaos_e2e.py).
    config = toy_run_config(tmp_path, "dies", learner={"max_steps": 50})
    process = train_process(config, "--restarts", "0")
    run_dir = tmp_path / "runs" / "dies"
    try:
        _wait_step(run_dir, 1, process)
        everything = descendants(process.pid)
        env_service = next(p for p in everything if "outrider.services.env.main" in _cmdline(p))
        os.kill(env_service, signal.SIGKILL)
        output = finish_train(process, timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 1
    assert re.search(r"service 'env' \(pid \d+\) stopped: killed by signal 9", output), output[-3000:]
    assert "restart budget spent (0 restarts)" in output, output[-3000:]
    assert _alive(everything) == [], [(_cmdline(p)) for p in _alive(everything)]


def test_ctrl_c_during_the_evaluation_stops_the_run_promptly(tmp_path):
    # An evaluation blocks in policy calls (minutes at the experiments' cpu scale); Ctrl-C
    # must not wait for it to finish. 16 tasks x 64 samples (a group is one Generate call,
    # within the policy's limits.max_prompts of 64) keeps this one busy for longer than the
    # test waits.
    config = toy_run_config(tmp_path, "stop", evaluation={"enabled": True, "tasks": 16, "samples": 64})
    process = train_process(config)
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("evaluating (before)"):
                break
        assert lines and lines[-1].startswith("evaluating (before)"), "".join(lines)[-3000:]
        time.sleep(3)  # inside the evaluation: its policy calls are in flight
        everything = descendants(process.pid)
        started = time.monotonic()
        os.kill(process.pid, signal.SIGINT)
        output = finish_train(process, timeout=120)
        stopped_in = time.monotonic() - started
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    # (Episodes still in flight then fail fast against the stopped services, so a last
    # "evaluated 16/16" line may follow the stop; the run must still end as interrupted.)
    assert "held-out before" not in output and not (tmp_path / "runs" / "stop" / "metrics.jsonl").exists()
    assert process.returncode == 1 and "interrupted during the evaluation (before)" in output, output[-3000:]
    assert stopped_in < 60, stopped_in
    assert _alive(everything) == [], [(_cmdline(p)) for p in _alive(everything)]

"""Learner test kit: a learnable synthetic task, configs, and launching `outrider learn`.

The task: every group has the same prompt; half of its trajectories answer
with a "good" completion (reward 1), half with a "bad" one (reward 0). A
learner that works raises log π(good | prompt) − log π(bad | prompt).
Rollout log-probabilities are computed with the initial model, as the policy
service would have reported them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml
from transformers import AutoModelForCausalLM

from outrider.models import resolve_model
from outrider.proto.v1.trajectory_pb2 import Trajectory, TrajectoryGroup, Turn

PROMPT = [1, 330, 4512, 314, 2476, 28]
GOOD = [504, 2119, 30, 2256, 42, 997, 2]
BAD = [711, 19, 8442, 301, 77, 1203, 2]


def sequence_logprobs(model, prompt: list[int], completion: list[int]) -> list[float]:
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1].float()
    logprobs = torch.log_softmax(logits, -1).gather(-1, ids[0, 1:, None])[:, 0]
    return logprobs[len(prompt) - 1 :].tolist()


def completion_margin(model_dir: str | Path) -> float:
    """log π(GOOD | PROMPT) − log π(BAD | PROMPT) under the model in `model_dir`."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    return sum(sequence_logprobs(model, PROMPT, GOOD)) - sum(sequence_logprobs(model, PROMPT, BAD))


def learnable_groups(count: int, per_group: int = 4, version: int = 0, prefix: str = "grp") -> list[TrajectoryGroup]:
    model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random"), dtype=torch.float32).eval()
    rollout = {"good": sequence_logprobs(model, PROMPT, GOOD), "bad": sequence_logprobs(model, PROMPT, BAD)}
    groups = []
    for g in range(count):
        group = TrajectoryGroup(group_id=f"{prefix}-{g:04d}", env="synthetic", task_id="t0", policy_version=version)
        for i in range(per_group):
            kind = "good" if i % 2 == 0 else "bad"
            completion = GOOD if kind == "good" else BAD
            n = len(PROMPT) + len(completion)
            group.trajectories.append(
                Trajectory(
                    trajectory_id=f"{group.group_id}/{i}",
                    prompt_length=len(PROMPT),
                    token_ids=PROMPT + completion,
                    logprobs=[0.0] * len(PROMPT) + rollout[kind],
                    loss_mask=[False] * len(PROMPT) + [True] * len(completion),
                    turns=[Turn(start=len(PROMPT), completion_length=len(completion), policy_version=version)],
                    outcome_reward=1.0 if kind == "good" else 0.0,
                    solved=kind == "good",
                )
            )
            assert n == len(group.trajectories[-1].token_ids)
        groups.append(group)
    return groups


def produce_groups(redis_url: str, prefix: str, groups: list[TrajectoryGroup]):
    """Send `groups` to the bus at `prefix`; returns a receiver for auditing it."""
    import redis

    from outrider.config import BusConfig
    from outrider.transport import RedisReceiver, RedisSender

    client = redis.Redis.from_url(redis_url)
    cfg = BusConfig(prefix=prefix)
    audit = RedisReceiver(client, cfg, name="audit")  # creates the consumer group
    sender = RedisSender(client, cfg)
    for group in groups:
        assert sender.send(group)
    return audit


def write_run_config(path: Path, run_dir: Path, redis_url: str, prefix: str, learner: dict) -> Path:
    config = {
        "kind": "run",
        "name": run_dir.name,
        "output_dir": str(run_dir.parent),
        "redis": {"url": redis_url},
        "bus": {"prefix": prefix, "claim_idle_ms": 2000},
        "learner": {
            "model": "tiny-random",
            "ranks": 2,
            "groups_per_step": 2,
            "max_policy_lag": 1000,
            "metrics_port": None,
            "report_to": [],
            "sync": {"mode": "none"},
            "optimizer": {"lr": 1e-3},
            "engine": {"micro_batch_tokens": 256},
            **learner,
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def learn_process(config: Path, *args: str) -> subprocess.Popen:
    """`outrider learn CONFIG ...` in its own process group (so a test can kill all ranks)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "outrider.cli.main", "learn", str(config), *args]
    return subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, timeout: float = 600) -> str:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        output, _ = process.communicate()
        raise AssertionError(f"learner did not finish in {timeout} s:\n{output[-4000:]}") from None
    assert process.returncode == 0, f"learner failed with {process.returncode}:\n{output[-4000:]}"
    return output


def kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for_step(run_dir: Path, step: int, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not any(m["step"] >= step for m in metrics(run_dir)):
        if process.poll() is not None:
            raise AssertionError(f"learner exited ({process.returncode}) before step {step}:\n{process.stdout.read()[-4000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"learner did not reach step {step} in {timeout} s")
        time.sleep(0.1)


def checkpoint_state(run_dir: Path) -> dict:
    root = run_dir / "checkpoints"
    tag = (root / "LATEST").read_text().strip()
    return json.loads((root / "state" / f"{tag}.json").read_text())


def straight_and_interrupted(redis_url: str, tmp_path: Path, learner: dict, tag: str = "") -> tuple[dict, dict]:
    """The same 4 learner steps twice — straight through, and stopped after step 2 then
    resumed — on fresh buses; each run's metrics by step."""
    results = {}
    for name, stops in {"straight": [4], "interrupted": [2, 4]}.items():
        prefix = f"{tag}{name}-{time.monotonic_ns()}"
        produce_groups(redis_url, prefix, learnable_groups(8, prefix=name))
        run_dir = tmp_path / name
        config = write_run_config(tmp_path / f"{name}.yaml", run_dir, redis_url, prefix, learner)
        for index, stop in enumerate(stops):
            finish(learn_process(config, "--max-steps", str(stop), *(["--resume"] if index else [])))
        results[name] = {m["step"]: m for m in metrics(run_dir)}
    return results["straight"], results["interrupted"]

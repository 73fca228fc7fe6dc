"""Weight sync: the learner's new weights reach a real policy service (HF backend), by every
mode; the same-host mode (`auto` -> shm, two ranks) leaves no staging file behind."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import redis
import torch
import yaml
from transformers import AutoModelForCausalLM

from outrider.config import BusConfig, parse_config
from outrider.models import resolve_model
from outrider.clients.policy import PolicyClient
from outrider.models.staging import staging_roots
from outrider.stack import LocalStack
from outrider.transport import RedisReceiver, RedisSender
from testkit.learner import GOOD, PROMPT, finish, learn_process, learnable_groups, sequence_logprobs, write_run_config

pytestmark = pytest.mark.slow


def _learner_logprobs(model_dir) -> list[float]:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    return sequence_logprobs(model, PROMPT, GOOD)


def _staging_entries() -> set[Path]:
    return {p for root in staging_roots() if root.is_dir() for p in root.glob(f"learner+{socket.gethostname()}+*")}


def _alive(entry: Path) -> bool:
    try:
        os.kill(int(entry.name.rsplit("+", 1)[1]), 0)
    except ProcessLookupError:
        return False
    return True


def test_policy_serves_each_published_version_with_the_learners_logprobs(any_redis_url, bus_prefix, tmp_path, monkeypatch):
    stack_cfg = parse_config(
        {
            "name": "policy-only",
            "output_dir": str(tmp_path),
            "redis": {"url": any_redis_url},
            "stack": {"services": ["policy"]},
            "policy": {"backend": "hf", "model": "tiny-random", "dtype": "float32", "http_port": None},
        }
    )
    client = redis.Redis.from_url(any_redis_url)
    RedisReceiver(client, BusConfig(prefix=bus_prefix), name="audit")
    sender = RedisSender(client, BusConfig(prefix=bus_prefix))
    for group in learnable_groups(6):  # two per learner run
        sender.send(group)

    run_dir = tmp_path / "run"
    with LocalStack(stack_cfg, tmp_path / "stack") as stack, PolicyClient(stack.addresses()["policy"], credentials=stack.credentials()) as policy:
        # The learner process updates the weights: it needs the admin role.
        for name, value in stack.child_env("admin").items():
            monkeypatch.setenv(name, value)
        assert policy.info().policy_version == 0
        initial = list(policy.score_tokens([(PROMPT + GOOD, len(PROMPT))]).sequences[0].logprobs)
        assert initial == pytest.approx(_learner_logprobs(resolve_model("tiny-random")), abs=1e-5)

        for step, mode in ((1, "stream"), (2, "path"), (3, "auto")):
            learner = {"max_steps": step, "sync": {"mode": mode, "address": stack.addresses()["policy"]}}
            config = write_run_config(tmp_path / f"{mode}.yaml", run_dir, any_redis_url, bus_prefix, learner)
            staged_before = _staging_entries()
            output = finish(learn_process(config, *(["--resume"] if step > 1 else [])))
            if mode == "auto":
                assert "(shm)" in output, "a policy on 127.0.0.1 gets staged files"
                # Whatever is new belongs to a live process (another test); none is this learner's.
                assert all(_alive(entry) for entry in _staging_entries() - staged_before)

            reply = policy.score_tokens([(PROMPT + GOOD, len(PROMPT))])
            assert reply.policy_version == step and policy.info().policy_version == step
            served = list(reply.sequences[0].logprobs)
            learned = _learner_logprobs(run_dir / "final")
            # fp32 on both sides, same weights; only kernel/batching order differs.
            assert max(abs(a - b) for a, b in zip(served, learned, strict=True)) < 1e-5
            assert max(abs(a - b) for a, b in zip(served, initial)) > 1e-3, "the weights did change"
    exported = yaml.safe_load((run_dir / "final" / "config.json").read_text())
    assert exported["architectures"] == ["LlamaForCausalLM"]

"""Weight sync: the learner's new weights reach a real policy service (HF backend)."""

from __future__ import annotations

import pytest
import redis
import torch
import yaml
from transformers import AutoModelForCausalLM

from outrider.config import BusConfig, parse_config
from outrider.models import resolve_model
from outrider.services.policy.client import PolicyClient
from outrider.stack import LocalStack
from outrider.transport import RedisReceiver, RedisSender
from testkit.learner import GOOD, PROMPT, finish, learn_process, learnable_groups, sequence_logprobs, write_run_config

pytestmark = pytest.mark.slow


def _learner_logprobs(model_dir) -> list[float]:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    return sequence_logprobs(model, PROMPT, GOOD)


def test_policy_serves_each_published_version_with_the_learners_logprobs(any_redis_url, bus_prefix, tmp_path):
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
    for group in learnable_groups(4):
        sender.send(group)

    run_dir = tmp_path / "run"
    with LocalStack(stack_cfg, tmp_path / "stack") as stack, PolicyClient(stack.addresses()["policy"]) as policy:
        assert policy.info().policy_version == 0
        initial = list(policy.score_tokens([(PROMPT + GOOD, len(PROMPT))]).sequences[0].logprobs)
        assert initial == pytest.approx(_learner_logprobs(resolve_model("tiny-random")), abs=1e-5)

        for step, mode in ((1, "stream"), (2, "path")):
            learner = {"max_steps": step, "sync": {"mode": mode, "address": stack.addresses()["policy"]}}
            config = write_run_config(tmp_path / f"{mode}.yaml", run_dir, any_redis_url, bus_prefix, learner)
            finish(learn_process(config, *(["--resume"] if step > 1 else [])))

            reply = policy.score_tokens([(PROMPT + GOOD, len(PROMPT))])
            assert reply.policy_version == step and policy.info().policy_version == step
            served = list(reply.sequences[0].logprobs)
            learned = _learner_logprobs(run_dir / "final")
            # fp32 on both sides, same weights; only kernel/batching order differs.
            assert max(abs(a - b) for a, b in zip(served, learned, strict=True)) < 1e-5
            assert max(abs(a - b) for a, b in zip(served, initial)) > 1e-3, "the weights did change"
    exported = yaml.safe_load((run_dir / "final" / "config.json").read_text())
    assert exported["architectures"] == ["LlamaForCausalLM"]

"""Issue 12: under dynamic sampling a worker does not send a group without learning signal.

Real services (policy on the HF backend with the untrained tiny model, the env service's
math environment, the curriculum service) and the run's embedded Redis. The tiny random
model never answers a sum, so every group it plays has rewards all equal: with
`learner.algorithm.dynamic_sampling` the worker counts it as discarded instead of
putting it on the bus, and still reports it to the curriculum, once.
"""

from __future__ import annotations

import pytest
import redis

from outrider.clients.curriculum import CurriculumClient
from outrider.clients.env import EnvClient
from outrider.config import parse_config
from outrider.rollout.worker import Rollouts
from outrider.stack import LocalStack
from outrider.transport import RedisReceiver

pytestmark = pytest.mark.slow

GROUP = 4


def _run(root, dynamic_sampling: bool):
    return parse_config(
        {
            "name": "nosignal",
            "output_dir": str(root),
            "stack": {"services": ["policy", "env", "curriculum"]},
            "policy": {"backend": "hf", "model": "tiny-random", "dtype": "float32", "http_port": None},
            "env": {"builtin_envs": ["math"]},
            "rollout": {"envs": ["math"], "group_size": GROUP, "sampling": {"max_tokens": 8}},
            "learner": {"algorithm": {"dynamic_sampling": dynamic_sampling}},
        }
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("nosignal")
    run = _run(root, dynamic_sampling=True)
    with LocalStack(run, root / "stack") as stack, pytest.MonkeyPatch.context() as env:
        # In-process rollouts present the stack's credentials as a worker process would.
        for name, value in stack.child_env("client").items():
            env.setenv(name, value)
        yield root, stack


def _wired(root, stack, dynamic_sampling: bool):
    run = _run(root, dynamic_sampling)
    return run.model_copy(
        update={
            "stack": run.stack.model_copy(update={"addresses": stack.addresses()}),
            "redis": run.redis.model_copy(update={"url": stack.redis.url}),
        }
    )


def test_a_group_without_signal_is_counted_not_sent_and_reported_once(stack):
    root, local = stack
    run = _wired(root, local, dynamic_sampling=True)
    with EnvClient(local.addresses()["env"], credentials=local.credentials()) as env:
        task = env.list_tasks("math", split="train", limit=1, include_reference=True)[0]
    rollouts = Rollouts(run)
    first = rollouts.play(task, "nosignal-g0000001", seed=1)
    # Precondition of this test: the untrained model solved none of them.
    assert len(first["rewards"]) == GROUP and len(set(first["rewards"])) == 1, first["rewards"]
    assert first["no_signal"] is True and first["sent"] is False
    # A retried task (same group id) is played again and not counted again.
    again = rollouts.play(task, "nosignal-g0000001", seed=1)
    assert again["no_signal"] is True and again["sent"] is False

    client = redis.Redis.from_url(local.redis.url)
    bus = RedisReceiver(client, run.bus, name="audit")
    # Counted from Redis itself, not from the bus's counters: nothing entered the stream.
    assert client.xlen(bus.keys.stream) == 0
    assert bus.produced_ids() == set()
    assert bus.discarded_ids() == {"nosignal-g0000001"}
    assert bus.stats().discarded == 1
    with CurriculumClient(local.addresses()["curriculum"], credentials=local.credentials()) as curriculum:
        # One report of GROUP episodes, not two.
        assert curriculum.state().total_attempts == GROUP


def test_without_dynamic_sampling_the_same_group_is_sent(stack):
    root, local = stack
    run = _wired(root, local, dynamic_sampling=False)
    with EnvClient(local.addresses()["env"], credentials=local.credentials()) as env:
        task = env.list_tasks("math", split="train", limit=1, include_reference=True)[0]
    summary = Rollouts(run).play(task, "nosignal-g0000002", seed=2)
    assert len(set(summary["rewards"])) == 1
    assert summary["no_signal"] is False and summary["sent"] is True
    client = redis.Redis.from_url(local.redis.url)
    bus = RedisReceiver(client, run.bus, name="audit-2")
    assert [fields[b"gid"].decode() for _, fields in client.xrange(bus.keys.stream)] == ["nosignal-g0000002"]

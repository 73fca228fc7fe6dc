"""A rollout worker whose progress stops ends with a named error and is restarted.

Real policy (HF, tiny-random) and env services, a real Celery worker (threads pool) under
the supervisor of `outrider train` (processes.py), a real Redis bus. The worker plays its
group, then cannot send it: the bus is full (`bus.max_len` 1, held by a group no learner
commits) and `bus.send_timeout_s` is unset, a wait no deadline bounds. Its watchdog ends
it after `rollout.stall_s`; restarted, with room on the bus and its task sent again (what
`outrider train` does for a dead worker's groups), it delivers the group."""

from __future__ import annotations

import re

import pytest
import redis

from outrider.clients.env import EnvClient
from outrider.config import BusConfig, dump_yaml, parse_config
from outrider.process import STALL_EXIT_CODE
from outrider.rollout.worker import TASK_NAME, encode_task, make_app
from outrider.stack import LocalStack
from outrider.train import processes
from outrider.transport import RedisReceiver, RedisSender
from testkit.e2e import wait_for_child
from testkit.learner import learnable_groups

pytestmark = pytest.mark.slow

STALL_S = 20.0


def test_a_worker_stuck_sending_is_named_ended_restarted_and_its_group_delivered(any_redis_url, bus_prefix, tmp_path):
    run = parse_config({
        "name": f"stall-{bus_prefix}",
        "output_dir": str(tmp_path),
        "redis": {"url": any_redis_url, "socket_timeout_s": 5},
        "bus": {"prefix": bus_prefix, "max_len": 1},
        "stack": {"services": ["policy", "env"], "auth": "insecure"},
        "policy": {"backend": "hf", "model": "tiny-random", "dtype": "float32", "http_port": None},
        "env": {"builtin_envs": ["math"]},
        "rollout": {"envs": ["math"], "group_size": 2, "groups_per_worker": 2, "max_turns": 1,
                    "sampling": {"max_tokens": 8}, "stall_s": STALL_S, "agents": {"run_timeout_s": 10}},
        "deadlines": {"policy_s": 15, "env_s": 15, "reward_s": 15, "curriculum_s": 15},
    })
    client = redis.Redis.from_url(any_redis_url)
    cfg = BusConfig(prefix=bus_prefix, max_len=1)
    learner = RedisReceiver(client, cfg, name="learner")
    assert RedisSender(client, cfg).send(learnable_groups(1, prefix="blocker")[0])  # the bus is full now
    logs = tmp_path / "logs"
    logs.mkdir()
    with LocalStack(run, tmp_path / "stack") as stack:
        run = run.model_copy(update={"stack": run.stack.model_copy(update={"addresses": stack.addresses()})})
        path = tmp_path / "run.yaml"
        path.write_text(dump_yaml(run))
        with EnvClient(stack.addresses()["env"]) as env:
            task = env.list_tasks("math", limit=1, include_reference=True)[0]
        app = make_app(run)
        child = processes.rollout_worker(0, path, logs, restarts=1, groups=2)
        child.start()
        try:
            app.send_task(TASK_NAME, args=[encode_task(task), "stuck-g1", 1])
            code = wait_for_child(lambda: child.exit_code(), 240, "the stuck worker did not exit", child)
            log = child.log_path.read_text()
            assert code == STALL_EXIT_CODE, log[-4000:]
            found = re.search(r"rollout worker \S+: no progress for (\d+) s \(last: group stuck-g1: sending it to the bus\); "
                              r"stall limit 20 s; exiting with status 75", log)
            assert found, log[-4000:]
            assert STALL_S <= float(found[1]) < STALL_S + 3  # shown rounded to whole seconds
            assert "its watchdog found it stalled" in child.describe_exit()

            assert processes.restart(child)
            assert child.exits == [STALL_EXIT_CODE]
            # Room on the bus (the learner trains the blocker), and the group sent again.
            delivered = learner.receive(1, block_s=1.0)
            assert [d.group.group_id for d in delivered] == [learnable_groups(1, prefix="blocker")[0].group_id]
            learner.commit(delivered)
            app.send_task(TASK_NAME, args=[encode_task(task), "stuck-g1", 1])
            got = wait_for_child(lambda: learner.receive(1, block_s=1.0), 180, "the group did not reach the bus", child)
            assert [d.group.group_id for d in got] == ["stuck-g1"]
            assert len(got[0].group.trajectories) == 2
            assert child.exit_code() is None  # it stays up: sending went through
        finally:
            child.stop()
            app.control.purge()
            learner.delete()

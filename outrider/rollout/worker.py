"""Rollout workers: Celery tasks that play one group each and publish it.
(`evaluate_task`: the same workers play the held-out episodes of `outrider eval`.)

    celery -A outrider.rollout.worker worker        (OUTRIDER_RUN_CONFIG=run.yaml)
    outrider worker run.yaml --concurrency 4        (the same, configured for you)

A task gets a Task message (protobuf bytes, base64 in Celery's JSON) and the
group id chosen by the dispatcher. It plays G episodes, scores them, sends the
TrajectoryGroup to the bus and reports the rewards to the curriculum. Under dynamic
sampling (`learner.algorithm.dynamic_sampling`) a group whose rewards are all equal is
not sent but counted (`TrajectorySender.discard`): no step could use it, and the
dispatcher plays another in its place.

Reliability (kombu's defaults take ~100 s): acks_late + reject_on_worker_lost +
prefetch 1, a visibility timeout longer than any rollout, and fast restore of
unacknowledged tasks, so a SIGKILLed worker's task runs again on another
worker within seconds. The group id makes that retry idempotent: the bus
drops a group id it has seen, so nothing is trained twice.

Partial rollouts (`rollout.partial`, outrider/rollout/partial.py): a task may
end with its group parked instead of sent; the dispatcher sends the same task
again once newer weights serve, and the worker then goes on from the park.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections import Counter

import redis
from celery import Celery
from celery.signals import worker_process_init

from outrider.config import RunConfig, load_config
from outrider.process import Watchdog, die_with_parent, exit_stalled
from outrider.proto.v1 import common_pb2

log = logging.getLogger(__name__)

TASK_NAME = "outrider.rollout.play_group"
EVAL_TASK_NAME = "outrider.rollout.evaluate_task"
QUEUE = "outrider-rollouts"


def make_app(run: RunConfig | None = None) -> Celery:
    """The Celery app for a run (broker and result backend: the run's Redis)."""
    url = (run.redis.url if run else None) or os.environ.get("OUTRIDER_REDIS_URL", "redis://127.0.0.1:6379/0")
    time_limit = run.rollout.task_time_limit_s if run else 1800.0
    # Every Redis command Celery makes (broker and results) has the run's deadline too.
    socket_timeout = run.redis.socket_timeout_s if run else 30.0
    app = Celery("outrider", broker=url, backend=url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=QUEUE,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_time_limit=time_limit,
        result_expires=3600,
        redis_socket_timeout=socket_timeout,
        redis_socket_connect_timeout=socket_timeout,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        broker_transport_options={
            # Longer than the longest rollout: a shorter one would run tasks twice.
            "visibility_timeout": int(time_limit * 2),
            "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1,
            "global_keyprefix": f"{run.name}:celery:" if run else "outrider:celery:",
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_timeout,
        },
        result_backend_transport_options={"global_keyprefix": f"{run.name}:celery:" if run else "outrider:celery:"},
    )
    return app


def _run_config() -> RunConfig | None:
    path = os.environ.get("OUTRIDER_RUN_CONFIG")
    return load_config(path) if path else None


app = make_app(_run_config())


class Rollouts:
    """Per-process clients of the services and the bus."""

    def __init__(self, run: RunConfig):
        from outrider.rollout.rpcs import Counted
        from outrider.clients.curriculum import CurriculumClient
        from outrider.clients.env import EnvClient
        from outrider.clients.policy import PolicyClient
        from outrider.transport import RedisSender, RolloutPark

        addresses = run.stack.addresses
        deadlines = run.deadlines
        self.run = run
        self.group_id = ""
        # RPCs of the group being played, per "service/Rpc" (reset per group).
        self.rpcs: Counter = Counter()
        watchdog = process_watchdog(run)

        def progress(rpc: str) -> None:
            watchdog.beat(f"group {self.group_id}: {rpc} ended")

        self.policy = Counted(PolicyClient(addresses["policy"], timeout_s=deadlines.policy_s), "policy", self.rpcs, progress)
        self.env = Counted(EnvClient(addresses["env"], timeout_s=deadlines.env_s), "env", self.rpcs, progress)
        self.curriculum = None
        if "curriculum" in addresses:
            curriculum = CurriculumClient(addresses["curriculum"], timeout_s=deadlines.curriculum_s)
            self.curriculum = Counted(curriculum, "curriculum", self.rpcs, progress)
        self.reward = None
        if run.rollout.reward.outcome == "reward-service" or run.rollout.reward.steps == "prm" or run.rollout.search.enabled:
            from outrider.clients.reward import RewardClient

            self.reward = Counted(RewardClient(addresses["reward"], timeout_s=deadlines.reward_s), "reward", self.rpcs, progress)
        client = redis.Redis.from_url(run.redis.url, socket_timeout=run.redis.socket_timeout_s)
        self.sender = RedisSender(client, run.bus)
        self.park = RolloutPark(client, run.bus) if run.rollout.partial.enabled else None
        from outrider.rollout.episodes import GroupPlayer

        self.player = GroupPlayer(self.policy, self.env, run.rollout)
        if run.rollout.search.enabled:
            from outrider.rollout.search_play import SearchPlayer

            # One PRM-guided search per group (rollout.search) instead of G sampled episodes.
            self.player = SearchPlayer(self.policy, self.env, self.reward, run.rollout)
        self.self_player = None
        if run.rollout.self_play.envs:
            from outrider.rollout.selfplay import SelfPlayer

            # Groups of two-seat games against a pinned opponent version (rollout.self_play).
            self.self_player = SelfPlayer(self.policy, self.env, run.rollout)
        from outrider.rollout.agents import AgentPlayer
        from outrider.transport.capture import CaptureStore

        capture = CaptureStore(client, run.policy.capture.prefix, run.policy.capture.ttl_s)
        self.agent_player = AgentPlayer(self.env, capture, run.rollout, run.policy.model_name)
        self._agent_envs: dict[str, bool] = {}
        self.pid = os.getpid()
        self.producer = f"{socket.gethostname()}/{self.pid}/{threading.get_ident()}"

    def _is_agent(self, env: str) -> bool:
        """Whether `env` is an `agent` environment (asked once per environment)."""
        if env not in self._agent_envs:
            kinds = {spec.name: spec.WhichOneof("kind") for spec in self.env.list_envs()}
            self._agent_envs.update({name: kind == "agent" for name, kind in kinds.items()})
        return self._agent_envs.get(env, False)

    def play(self, task: common_pb2.Task, group_id: str, seed: int) -> dict:
        from outrider.rollout.episodes import build_group
        from outrider.rollout.partial import from_partial, partial_group
        from outrider.rollout.rewards import assign_rewards

        self.rpcs.clear()
        self.group_id = group_id
        started_unix = time.time()
        started = time.perf_counter()
        stored = self.park.load(group_id) if self.park is not None else None
        parked = False
        if stored is not None:
            seed = stored.seed

        def park(episodes) -> bool:
            nonlocal parked
            parks = (stored.parks if stored is not None else 0) + 1
            partial = self.run.rollout.partial
            if parks > partial.max_parks:
                return False
            limit = partial.max_parked or self.run.learner.groups_per_step
            parked = self.park.park(partial_group(task, group_id, seed, episodes, parks), limit)
            return parked

        self_play = self.self_player is not None and task.env in self.run.rollout.self_play.envs
        player = self.agent_player if self._is_agent(task.env) else self.player
        if self_play:
            # Self-play games are not parked: each one's seats wait on each other move by move.
            player = self.self_player
            episodes = player.play(task, seed=seed, key=group_id)
        else:
            episodes = player.play(
                task,
                seed=seed,
                resume=[from_partial(e) for e in stored.episodes] if stored is not None else None,
                park=park if self.park is not None and player is self.player else None,
            )
        summary = {
            "group_id": group_id,
            "no_signal": False,
            "episodes": len(episodes),
            "resumed": stored is not None,
            "parked": parked,
            "policy_version": min((t.policy_version for e in episodes for t in e.turns), default=0),
            "seconds": time.perf_counter() - started,
            "generate_seconds": player.seconds["policy"],
            "env_seconds": player.seconds["env"],
            "turns": sum(len(e.turns) for e in episodes),
            "started_unix": round(started_unix, 3),
            "generate_calls": [[round(a, 3), round(b, 3), n] for a, b, n in player.generations],
            "sent": False,
        }
        if getattr(player, "search", None):
            summary["search"] = dict(player.search)  # compute per search episode: tokens, calls
        if player is self.agent_player:
            summary["agent_sessions"] = list(player.reports)  # per episode: calls -> sequences
        if self_play:
            summary["self_play"] = dict(player.report)  # opponent version, the trained seat's win rate
        if parked:
            log.info("group %s parked (%d of its episodes wait on a cut completion)", group_id, sum(e.open for e in episodes))
            summary["finished_unix"] = round(time.time(), 3)
            summary["rpcs"] = dict(self.rpcs)
            return summary
        rewarded = time.perf_counter()
        repetition = self.run.rollout.repetition
        if not self_play:  # a game's outcome is its reward (selfplay.py), assigned when it ends
            assign_rewards(task, episodes, self.run.rollout.reward, self.reward, repetition.reward if repetition else None)
        reward_seconds = time.perf_counter() - rewarded
        result = player.build(task, group_id, episodes) if self_play else build_group(task, group_id, episodes)
        group = result.group
        group.producer = self.producer
        group.created_unix = time.time()
        # Infra-failed episodes travel flagged (the learner leaves them out of the group);
        # their rewards measured nothing, so neither the counts nor the curriculum see them.
        valid = [t for t in group.trajectories if not t.infra_failure]
        summary |= {
            "trajectories": len(valid),
            "infra_failures": len(group.trajectories) - len(valid),
            "errors": result.errors,
            "policy_version": group.policy_version,
            "rewards": [t.outcome_reward for t in valid],
            "tokens": sum(sum(t.loss_mask) for t in valid),
            "repetition_stops": sum(t.HasField("repetition") for t in group.trajectories),
            "seconds": time.perf_counter() - started,
            "reward_seconds": reward_seconds,
        }
        for error in result.errors:
            log.warning("group %s: %s", group_id, error)
        if len(valid) < self.run.rollout.min_group_size:
            log.error("group %s: only %d episodes succeeded; not sent", group_id, len(valid))
        elif self.run.learner.algorithm.dynamic_sampling and not has_signal(summary["rewards"]):
            # The learner would drop it (DAPO dynamic sampling): it need not cross Redis.
            summary["no_signal"] = True
            # The curriculum still learns from it (an all-solved task is too easy).
            if self.sender.discard(group_id) and self.curriculum is not None:
                self.curriculum.report(task.env, task.id, summary["rewards"], group.policy_version)
        else:
            # A bus full for longer than rollout.stall_s (its learner not committing) ends
            # this process like any stall; its task is played again, the bus drops the copy.
            process_watchdog(self.run).beat(f"group {group_id}: sending it to the bus")
            summary["sent"] = self.sender.send(group)
            # A group sent before (a retried or replayed task) was reported then.
            if self.curriculum is not None and summary["sent"]:
                self.curriculum.report(task.env, task.id, summary["rewards"], group.policy_version)
        if stored is not None:
            # On the bus now (or given up on): nothing is left to continue.
            self.park.remove(group_id)
        summary["finished_unix"] = round(time.time(), 3)
        summary["rpcs"] = dict(self.rpcs)
        return summary


def has_signal(rewards: list[float]) -> bool:
    """A group whose rewards are not all equal: the learner's dynamic-sampling filter."""
    import torch

    from outrider.learner.algos import dynamic_sampling_mask

    values = torch.tensor(rewards, dtype=torch.float64)
    return bool(dynamic_sampling_mask(values, torch.zeros(len(rewards), dtype=torch.long)).any())


_local = threading.local()


class _Playing:
    """Groups this process plays now (the threads of one worker process share it)."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()


_watchdog: tuple[int, Watchdog, _Playing] | None = None
_watchdog_lock = threading.Lock()


def process_watchdog(run: RunConfig) -> Watchdog:
    """This process's stall watchdog (`rollout.stall_s`; made once per process).

    Its clock runs only while a group is in play (an idle worker waits for tasks, not
    stalled) and restarts whenever one of the group's service calls ends, answered or
    failed: every call has a deadline (`deadlines`), so a stall means something without
    one hangs (a deadlock, a call stuck in C code, a bus full for good). Then the process
    ends with the named error and exit status 75: a prefork pool child is replaced by its
    Celery worker and its task given back (acks_late, reject_on_worker_lost); a threads-pool
    worker as a whole is restarted by `outrider train`, which sends its groups again."""
    global _watchdog
    with _watchdog_lock:
        if _watchdog is None or _watchdog[0] != os.getpid():
            playing = _Playing()
            name = f"rollout worker {socket.gethostname()}/{os.getpid()}"
            dog = Watchdog(name, run.rollout.stall_s, exit_stalled, active=lambda: playing.count > 0).start()
            _watchdog = (os.getpid(), dog, playing)
        return _watchdog[1]


@contextlib.contextmanager
def playing(run: RunConfig, what: str):
    """Count a group in play for this process's watchdog."""
    dog = process_watchdog(run)
    counter = _watchdog[2]
    with counter.lock:
        counter.count += 1
    dog.beat(f"{what}: starting")
    try:
        yield
    finally:
        with counter.lock:
            counter.count -= 1
        dog.beat(f"{what}: finished")


def _thread_local(name: str, build):
    """This thread's `build(run)` under `name`, made once per thread and process."""
    mine = getattr(_local, name, None)
    if mine is None or mine.pid != os.getpid():
        run = _run_config()
        if run is None:
            raise RuntimeError("OUTRIDER_RUN_CONFIG is not set: the worker does not know its run")
        mine = build(run)
        setattr(_local, name, mine)
    return mine


def rollouts() -> Rollouts:
    """This thread's clients: a worker with `groups_per_worker` > 1 plays groups in
    threads, and a GroupPlayer keeps per-group state (its timings) while it plays."""
    return _thread_local("rollouts", Rollouts)


@worker_process_init.connect
def _fresh_clients(**_) -> None:
    # gRPC channels must not cross a fork: each worker process builds its own.
    _local.__dict__.clear()
    # A pool process dies with its worker: a killed worker leaves no orphan
    # still playing (and publishing) a group.
    die_with_parent(signal.SIGKILL)


@app.task(name=TASK_NAME, bind=True, acks_late=True, max_retries=5)
def play_group(self, task_b64: str, group_id: str, seed: int = 0) -> dict:
    """Play one group of `task` and publish it as `group_id` (idempotent)."""
    task = common_pb2.Task.FromString(base64.b64decode(task_b64))
    try:
        mine = rollouts()
        with playing(mine.run, f"group {group_id}"):
            return mine.play(task, group_id, seed)
    except Exception as exc:
        _retry_if_transient(self, exc)
        raise


def _retry_if_transient(task, exc: Exception) -> None:
    """A service that is restarting or slow gets the Celery task retried; anything else fails it.

    The waits double, 2·2^n s up to 15 s: 2 + 4 + 8 + 15 + 15 = 44 s over `max_retries`
    (5), about what `outrider train` needs to start a dead service again and see it
    SERVING (a policy loads its model first)."""
    import grpc

    if isinstance(exc, grpc.RpcError) and exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        raise task.retry(exc=exc, countdown=min(2 * 2 ** task.request.retries, 15)) from exc


def encode_task(task: common_pb2.Task) -> str:
    return base64.b64encode(task.SerializeToString()).decode()


class Evaluators:
    """Per-thread clients for `outrider eval` tasks: the run's env service, and one policy
    client per address (each checkpoint is served by its own policy service); the reward
    service too when the evaluation searches (best-of-search: its PRM values the steps)."""

    def __init__(self, run: RunConfig):
        from outrider.clients.env import EnvClient

        self.run = run
        self.env = EnvClient(run.stack.addresses["env"], timeout_s=run.deadlines.env_s)
        self.reward = None
        if "reward" in run.stack.addresses:
            from outrider.clients.reward import RewardClient

            self.reward = RewardClient(run.stack.addresses["reward"], timeout_s=run.deadlines.reward_s)
        self.policies: dict[str, object] = {}
        self.pid = os.getpid()

    def evaluate(self, request):
        from outrider.rollout.evaluation import evaluate_task as evaluate
        from outrider.clients.policy import PolicyClient

        if request.policy_address not in self.policies:
            for old in self.policies.values():
                old.close()  # the previous checkpoint's service is gone
            self.policies = {request.policy_address: PolicyClient(request.policy_address, timeout_s=self.run.deadlines.policy_s)}
        return evaluate(request, self.policies[request.policy_address], self.env, self.run.rollout, self.reward)


def evaluators() -> Evaluators:
    return _thread_local("evaluators", Evaluators)


@app.task(name=EVAL_TASK_NAME, bind=True, acks_late=True, max_retries=3)
def evaluate_task(self, request_b64: str) -> str:
    """Evaluate one task of one checkpoint (EvalTaskRequest in, TaskSamples out, both
    protobuf bytes in base64): `outrider eval`'s unit of work."""
    from outrider.proto.v1 import eval_pb2

    request = eval_pb2.EvalTaskRequest.FromString(base64.b64decode(request_b64))
    try:
        return base64.b64encode(evaluators().evaluate(request).SerializeToString()).decode()
    except Exception as exc:
        _retry_if_transient(self, exc)
        raise

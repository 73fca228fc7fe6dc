"""`outrider train`: start everything, train, evaluate, stop cleanly.

Local mode: Redis (embedded, persistent under the run folder, when no URL is
set), the four services (`outrider.stack.LocalStack`), N Celery rollout
workers, the DeepSpeed learner (torchrun), and the dispatcher loop here.
Cluster mode: the services, workers and learner already run (Helm); only the
dispatcher and the progress display run here.

Failures (docs/training.md, "What survives a crash"): a rollout worker or the
learner that dies is restarted (its work comes back from Celery / the bus); a
service or the embedded Redis that dies is restarted on its port with its
config (`LocalStack.restart_dead`; Redis from its append-only file), and after
a policy restart the learner is restarted too, so that the new policy serves
the learner's weights and not the initial model. Each has its own restart
budget; once one is spent the run stops, naming what died and how.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import grpc
import redis
from kombu.exceptions import OperationalError

from outrider.config import RunConfig, dump_yaml
from outrider.stack import LocalStack, StackError
from outrider.train import processes
from outrider.train.driver import Dispatcher, DispatchStalled, ledger
from outrider.train.evaluate import EvalResult, evaluate, held_out_tasks
from outrider.train.progress import Progress

log = logging.getLogger(__name__)


class TrainError(RuntimeError):
    """The run could not finish."""


# What a started run leaves in its folder; any of them means "an earlier run is here".
PREVIOUS_RUN_MARKERS = ("metrics.jsonl", "rollouts.jsonl", "checkpoints", "redis", "summary.json")


def _with_local_defaults(run: RunConfig) -> RunConfig:
    updates = {}
    if not run.redis.url and not run.redis.embedded.data_dir:
        # Persistent, so that `--resume` finds the bus and curriculum where they were.
        embedded = run.redis.embedded.model_copy(update={"persistence": True, "data_dir": str(run.run_dir / "redis")})
        updates["redis"] = run.redis.model_copy(update={"embedded": embedded})
    # A pool of "every env of the env service" means, for a run, the envs it trains on.
    pools = [
        pool.model_copy(update={"envs": list(run.rollout.envs)}) if pool.type == "env-service" and not pool.envs else pool
        for pool in run.curriculum.pools
    ]
    updates["curriculum"] = run.curriculum.model_copy(update={"pools": pools})
    if run.bus.prefix == "outrider":
        updates["bus"] = run.bus.model_copy(update={"prefix": f"{run.name}:bus"})
    return run.model_copy(update=updates)


class TrainRun:
    def __init__(self, run: RunConfig, resume: bool = False, restarts: int = 3, overwrite: bool = False):
        self.run = _with_local_defaults(run) if run.stack.mode == "local" else run
        self.resume = resume
        self.overwrite = overwrite
        self.restarts = restarts
        self.run_dir = self.run.run_dir
        self.stack: LocalStack | None = None
        self.children: list[processes.Supervised] = []
        self._stop = False
        self.dispatcher: Dispatcher | None = None

    # -- lifecycle ------------------------------------------------------------

    def execute(self) -> dict:
        self._claim_run_dir()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        signal.signal(signal.SIGTERM, lambda *_: self._request_stop())
        signal.signal(signal.SIGINT, lambda *_: self._request_stop())
        try:
            effective = self._start_services()
            summary = self._train(effective)
            return summary
        finally:
            self._teardown()

    def _claim_run_dir(self) -> None:
        """A fresh run must not mix with an earlier one's bus, checkpoints and metrics."""
        earlier = [name for name in PREVIOUS_RUN_MARKERS if (self.run_dir / name).exists()]
        if not earlier or self.resume:
            return
        if not self.overwrite:
            raise TrainError(
                f"{self.run_dir} already holds a run ({', '.join(earlier)}): continue it with --resume, "
                "start over with --overwrite, or change `name`/`output_dir` in the config"
            )
        print(f"removing the earlier run in {self.run_dir}", flush=True)
        shutil.rmtree(self.run_dir)

    def _request_stop(self) -> None:
        log.warning("stop requested")
        self._stop = True

    def _start_services(self) -> RunConfig:
        run = self.run
        if run.stack.mode == "local":
            print(f"starting services: redis, {', '.join(run.stack.services)} ...", flush=True)
            self.stack = LocalStack(run, self.run_dir, restarts=self.restarts)
            self.stack.start()
            stack = run.stack.model_copy(update={"addresses": self.stack.addresses()})
            run = run.model_copy(update={"stack": stack, "redis": run.redis.model_copy(update={"url": self.stack.redis.url})})
            for name, address in self.stack.addresses().items():
                print(f"  {name:<10} {address}", flush=True)
        self._warn_without_persistence(run)
        path = self.run_dir / "run.yaml"
        path.write_text(dump_yaml(run))
        path.chmod(0o600)  # the Redis URL in it carries the run's password
        self.effective_path = path
        return run

    def _warn_without_persistence(self, run: RunConfig) -> None:
        """A run's own embedded Redis is persistent (`_with_local_defaults`); a Redis the
        user named may not be, and then a restart of it loses queued groups."""
        import redis

        from outrider.transport.persistence import check, warning

        if not run.redis.url:
            return
        client = redis.Redis.from_url(run.redis.url, socket_timeout=run.redis.socket_timeout_s)
        try:
            loud = warning(check(client), "this run's trajectory bus")
        finally:
            client.close()
        if loud:
            print(loud, file=sys.stderr, flush=True)

    def _clients(self, run: RunConfig):
        from outrider.clients.curriculum import CurriculumClient
        from outrider.clients.env import EnvClient
        from outrider.clients.policy import PolicyClient

        addresses = run.stack.addresses
        creds = self.stack.credentials() if self.stack is not None else None  # cluster mode: from the environment
        deadlines = run.deadlines
        return (PolicyClient(addresses["policy"], credentials=creds, timeout_s=deadlines.policy_s),
                EnvClient(addresses["env"], credentials=creds, timeout_s=deadlines.env_s),
                CurriculumClient(addresses["curriculum"], credentials=creds, timeout_s=deadlines.curriculum_s))

    def _evaluate(self, run: RunConfig, policy, env, name: str) -> EvalResult | None:
        if not run.evaluation.enabled:
            return None
        path = self.run_dir / f"eval_{name}.json"
        if name == "before" and path.exists():
            return EvalResult.load(path)
        print(f"evaluating ({name}): {run.evaluation.tasks} held-out tasks x {run.evaluation.samples} samples ...", flush=True)
        tasks = held_out_tasks(env, run.rollout.envs, run.evaluation.tasks)
        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            # A line per quarter of the tasks: a cpu-scale evaluation (16 x 64 episodes) takes minutes.
            if done == total or done % max(total // 4, 1) == 0:
                print(f"  evaluated {done}/{total} tasks ({time.monotonic() - started:.0f} s)", flush=True)

        result = self._interruptible(lambda: evaluate(policy, env, tasks, run.rollout, run.evaluation, progress=progress),
                                     f"the evaluation ({name})")
        result.finished_at = round(time.time(), 3)
        result.save(path)
        print(f"  pass@1 {result.pass_at_k['1']:.3f}  first-try pass@1 {result.first_try_pass_at_k['1']:.3f}  "
              f"pass@{result.samples} {result.pass_at_k[str(result.samples)]:.3f}  (policy version {result.policy_version})", flush=True)
        return result

    def _interruptible(self, work, what: str):
        """`work()`'s result, waited for in a way Ctrl-C / SIGTERM can cut short: an evaluation
        blocks in policy calls for minutes, and the stop must not wait for it. The work runs
        in a daemon thread; on a stop its calls fail once the teardown stops the services."""
        box: dict = {}

        def target() -> None:
            try:
                box["result"] = work()
            except BaseException as exc:  # handed to the caller below
                box["error"] = exc

        thread = threading.Thread(target=target, name="interruptible", daemon=True)
        thread.start()
        while thread.is_alive() and not self._stop:
            thread.join(0.25)
        if self._stop:  # also when the work failed because of the stop
            raise TrainError(f"interrupted during {what}; run it again (`--resume` continues a run with checkpoints)")
        if "error" in box:
            raise box["error"]
        return box["result"]

    def _train(self, run: RunConfig) -> dict:
        policy, env, curriculum = self._clients(run)
        curriculum.wait_ready(timeout_s=run.stack.startup_timeout_s)
        before = self._evaluate(run, policy, env, "before")
        logs = self.run_dir / "logs"
        logs.mkdir(exist_ok=True)
        started = time.monotonic()
        if run.stack.mode == "local":
            self.children = [
                processes.rollout_worker(i, self.effective_path, logs, self.restarts, run.rollout.groups_per_worker)
                for i in range(run.rollout.workers)
            ]
            learner = processes.learner(self.effective_path, run.learner.ranks, logs, self.restarts, self.resume,
                                        run_dir=self.run_dir)
            self.children.append(learner)
            for child in self.children:
                # Workers call the services as clients; the learner also updates the policy's weights.
                child.env.update(self.stack.child_env("admin" if child is learner else "client"))
                child.start()
        dispatcher = self.dispatcher = Dispatcher(run, curriculum, self.run_dir, lambda: policy.info().policy_version)
        progress = Progress(run, self.run_dir, dispatcher)
        while not self._stop:
            if self.stack is not None and "policy" in self.stack.restart_dead():
                self._republish_weights()
            if self._supervise():
                break
            try:
                dispatcher.tick()
                progress.maybe_print()
            except DispatchStalled as exc:
                raise TrainError(f"{exc}; continue with `outrider train --resume` once the cause is fixed") from exc
            except TRANSIENT as exc:
                if _is_transient(exc):
                    log.warning("dispatcher waits a tick: %s", _one_line(exc))
                else:
                    raise
            time.sleep(0.5)
        dispatcher.cancel()
        if self._stop:
            raise TrainError(f"interrupted; continue with `outrider train --resume` (checkpoints in {self.run_dir / 'checkpoints'})")
        progress.maybe_print(final=True)
        for child in self.children:
            child.stop()
        after = self._evaluate(run, policy, env, "after")
        trained = _trained_ids(self.run_dir)
        summary = {
            "run_dir": str(self.run_dir),
            "seconds": time.monotonic() - started,
            "rollouts": vars(dispatcher.stats) | {"recent": None},
            "ledger": ledger(run, trained),
            "before": before.__dict__ if before else None,
            "after": after.__dict__ if after else None,
            "restarts": {c.name: c.exits for c in self.children if c.exits} | (self.stack.exits if self.stack else {}),
        }
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary

    def _supervise(self) -> bool:
        """Restart dead workers / learner; True once the learner has finished."""
        if self.run.stack.mode == "cluster":
            # The learner runs elsewhere (Helm); its checkpoints on shared storage say how far it got.
            steps = self.run.learner.max_steps
            return bool(steps) and _trained_steps(self.run_dir) >= steps
        for child in self.children:
            code = child.exit_code()
            if code is None:
                continue
            if child.name == "learner" and code == 0:
                return True
            if not processes.restart(child, "--resume" if child.name == "learner" else None):
                raise TrainError(f"{child.describe_exit()}; restart budget spent")
            if child.name != "learner" and self.dispatcher is not None:
                self.dispatcher.replay_in_play()
        return False

    def _republish_weights(self) -> None:
        """A restarted policy serves the initial model as version 0, and every group it
        samples would be too stale for the learner, which then never steps and never
        publishes: restart the learner (gracefully: it checkpoints and commits first), whose
        start-up `reconcile` sends its weights to the new policy. Not a failure of the
        learner, so its restart budget is left alone."""
        learner = next((c for c in self.children if c.name == "learner"), None)
        if learner is None or learner.exit_code() is not None:
            return  # not started yet, or finished / dead (`_supervise` sees to that)
        log.warning("the policy service was restarted: restarting the learner so that it republishes its weights")
        learner.stop(timeout_s=60)
        if "--resume" not in learner.command:
            learner.command = [*learner.command, "--resume"]
        learner.start()

    def _teardown(self) -> None:
        for child in self.children:
            child.stop()
        if self.stack is not None:
            self.stack.stop()


# What a Redis restart or a restarting service looks like to the dispatcher for a moment.
TRANSIENT = (redis.RedisError, OSError, OperationalError, grpc.RpcError)


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, grpc.RpcError):
        return exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    return not isinstance(exc, redis.ResponseError) or "LOADING" in str(exc)


def _one_line(exc: Exception) -> str:
    text = exc.details() if isinstance(exc, grpc.RpcError) else str(exc)
    return f"{type(exc).__name__}: {(text or '').splitlines()[0] if text else ''}"


def _latest_state(run_dir: Path):
    # The learner owns its checkpoint layout; torch is imported only when a run asks.
    from outrider.learner.checkpoint import read_state

    return read_state(Path(run_dir) / "checkpoints")


def _trained_steps(run_dir: Path) -> int:
    state = _latest_state(run_dir)
    return state.step if state else 0


def _trained_ids(run_dir: Path) -> list[str]:
    state = _latest_state(run_dir)
    return state.trained_group_ids if state else []


__all__ = ["StackError", "TrainError", "TrainRun"]

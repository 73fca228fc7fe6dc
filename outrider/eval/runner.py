"""`outrider eval`: sample named checkpoints at large n on held-out tasks, score their
correct solutions under the base model, and write the reasoning-boundary report.

The order of work, so that every mistake in the input stops it before any sampling:

1. checks that need no service: names, k ≤ n, every checkpoint exists, one tokenizer;
2. Redis (embedded unless `redis.url`) and the env service; the held-out tasks of each
   environment (one without a test split stops the evaluation here);
3. the Celery rollout workers (the worker code `outrider train` uses);
4. per checkpoint, the base last: a policy service of its own, one worker task per
   held-out task not stored yet, each result appended to samples/<checkpoint>.jsonl;
5. with the base still served, every stored correct solution scored under the base
   (records/<checkpoint>.jsonl);
6. `analyze` and the report (outrider.eval.analysis, outrider.eval.report).

Storage and resume: outrider.eval.store.
"""

from __future__ import annotations

import logging
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from outrider.config import RunConfig, dump_yaml
from outrider.config.rollout import SearchConfig
from outrider.eval import store
from outrider.eval.checkpoints import Checkpoint, CheckpointError, resolve_checkpoint, tokenizer_difference
from outrider.eval.dispatch import DispatchError, Progress, TaskDispatcher
from outrider.eval.records import TaskRecord, load_records
from outrider.proto.v1 import common_pb2, eval_pb2
from outrider.stack import LocalStack, StackError

log = logging.getLogger(__name__)

GPU_SAMPLES = 256
CPU_SAMPLES = 16


class EvalError(RuntimeError):
    """The evaluation cannot start or could not finish; the message names the problem."""


@dataclass
class EvalSettings:
    """What the command line chose; None: from the run config (evaluation.boundary)."""

    checkpoints: list[tuple[str, str]]
    """(name, source) in command-line order."""
    base: str | None = None
    n: int | None = None
    tasks: int | None = None
    out: Path | None = None
    seed: int | None = None
    ks: list[int] = field(default_factory=list)
    resume: bool = False
    overwrite: bool = False
    search: str | None = None
    """none | beam | mcts: best-of-search samples (evaluation.boundary.search)."""


@dataclass
class EvalOutcome:
    index: Path
    analysis: dict
    summary: str


def default_samples(run: RunConfig) -> int:
    from outrider.services.policy.backend import resolve_device

    return GPU_SAMPLES if resolve_device(run.policy.device) == "cuda" else CPU_SAMPLES


class EvalRun:
    def __init__(self, run: RunConfig, settings: EvalSettings, restarts: int = 3):
        self.run = run
        self.settings = settings
        self.restarts = restarts
        self.cfg = run.evaluation.boundary
        self.names = [name for name, _ in settings.checkpoints]
        self.base = settings.base or (self.names[0] if self.names else "")
        n = _first(settings.n, self.cfg.samples)
        self.n = default_samples(run) if n is None else n
        self.tasks_per_env = _first(settings.tasks, self.cfg.tasks, run.evaluation.tasks)
        self.seed = run.seed if settings.seed is None else settings.seed
        self.search = _first(settings.search, self.cfg.search)
        self.env_stack: LocalStack | None = None
        self.policy_stack: LocalStack | None = None
        self.workers: list = []
        self.auth_dir = None
        """The credentials every stack of this evaluation shares (those of the env stack)."""
        self._stop = False

    # -- checks that need nothing running -------------------------------------------------

    def _check_settings(self) -> list[Checkpoint]:
        if self.run.stack.mode != "local":
            raise EvalError("stack.mode: outrider eval starts a policy service per checkpoint; it runs in `local` mode")
        if self.base not in self.names:
            raise EvalError(f"--base {self.base!r} is not one of the checkpoints ({', '.join(self.names)})")
        if not 1 <= self.n <= 1024:
            raise EvalError(f"--n {self.n}: samples per task must be in 1..1024")
        if self.tasks_per_env < 1:
            raise EvalError(f"--tasks {self.tasks_per_env}: at least one held-out task per environment")
        too_large = [k for k in self.settings.ks if k > self.n]
        if too_large or any(k < 1 for k in self.settings.ks):
            raise EvalError(f"--k {', '.join(map(str, too_large or self.settings.ks))}: pass@k needs 1 <= k <= n = {self.n} "
                            "(raise --n or lower --k)")
        self._check_search()
        if self.run.evaluation.temperature == 0 and self.n > 1:
            raise EvalError(f"evaluation.temperature: 0 (greedy) gives {self.n} identical samples per task; use --n 1 or a temperature > 0")
        try:
            checkpoints = [resolve_checkpoint(name, source) for name, source in self.settings.checkpoints]
        except CheckpointError as exc:
            raise EvalError(str(exc)) from None
        base = next(c for c in checkpoints if c.name == self.base)
        for other in checkpoints:
            if other is not base and (problem := tokenizer_difference(base.tokenizer_dir, other.tokenizer_dir)):
                raise EvalError(
                    f"--checkpoint {other.name}={other.source}: its tokenizer differs from the base {base.name!r} "
                    f"({problem}); pass@k, perplexities and entropies compare only over one tokenizer"
                )
        return checkpoints

    def _check_search(self) -> None:
        if self.search == "none":
            return
        if self.search not in ("beam", "mcts"):
            raise EvalError(f"--search {self.search!r}: one of none, beam, mcts")
        if self.run.reward.prm is None:
            raise EvalError(f"--search {self.search}: best-of-search values steps with the reward service's PRM, "
                            "and reward.prm is not set (docs/reward.md, \"Search rollouts\")")
        try:
            SearchConfig.model_validate({**self.run.rollout.search.model_dump(), "mode": self.search})
        except ValueError as exc:
            raise EvalError(f"--search {self.search} with rollout.search's settings: {exc}") from None

    @property
    def out(self) -> Path:
        if self.settings.out is not None:
            return Path(self.settings.out)
        for checkpoint in self._checkpoints:
            if checkpoint.name != self.base and checkpoint.checkpoints_root is not None:
                return checkpoint.checkpoints_root.parent / "eval"
            if checkpoint.name != self.base and checkpoint.folder is not None and checkpoint.folder.name == "final":
                return checkpoint.folder.parent / "eval"
        return Path(self.run.output_dir) / f"eval-{self.run.name}"

    def _claim_out(self) -> dict | None:
        """The earlier manifest when resuming; refuses to mix with an earlier evaluation."""
        out = self.out
        earlier = [p for p in (store.MANIFEST, store.SAMPLES_DIR, "records") if (out / p).exists()]
        if not earlier:
            return None
        if self.settings.overwrite:
            print(f"removing the earlier evaluation in {out}", flush=True)
            shutil.rmtree(out)
            return None
        if not self.settings.resume:
            raise EvalError(f"{out} already holds an evaluation ({', '.join(earlier)}): continue it with --resume, "
                            "start over with --overwrite, or choose another --out")
        return store.read_manifest(out)

    # -- the run ------------------------------------------------------------------------------

    def execute(self) -> EvalOutcome:
        self._checkpoints = self._check_settings()
        earlier = self._claim_out()
        previous = {sig: signal.signal(sig, lambda *_: self._request_stop()) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            tasks = self._start_env()
            manifest = self._manifest(tasks, earlier)
            store.write_manifest(self.out, manifest)
            self._start_workers()
            self._sample_and_score(tasks)
            return self._report(tasks)
        except (StackError, DispatchError) as exc:
            raise EvalError(str(exc)) from None
        finally:
            self._teardown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _request_stop(self) -> None:
        self._stop = True

    def _check_stop(self) -> None:
        if self._stop:
            raise EvalError(f"interrupted; continue with `outrider eval ... --resume` (stored so far: {self.out})")

    def _start_env(self) -> dict[str, common_pb2.Task]:
        from outrider.clients.env import EnvClient

        logs = self.out / store.LOGS_DIR
        logs.mkdir(parents=True, exist_ok=True)
        print(f"starting redis and the env service (logs: {logs}) ...", flush=True)
        # Best-of-search needs the reward service (its PRM) beside the env service.
        services = ["env"] if self.search == "none" else ["env", "reward"]
        env_run = self.run.model_copy(update={"stack": self.run.stack.model_copy(update={"services": services})})
        self.env_stack = LocalStack(env_run, logs)
        self.env_stack.start()
        # The policy stacks of the checkpoints and the workers use the env stack's credentials.
        self.auth_dir = self.env_stack.auth_dir
        addresses = {name: self.env_stack.addresses()[name] for name in services}
        address = addresses["env"]
        tasks: dict[str, common_pb2.Task] = {}
        with EnvClient(address, credentials=self.env_stack.credentials()) as env:
            for name in self.run.rollout.envs:
                try:
                    found = env.list_tasks(name, split="test", limit=self.tasks_per_env)
                except grpc.RpcError as exc:
                    raise EvalError(f"environment {name!r} (rollout.envs): its test split cannot be listed: "
                                    f"{exc.code().name}: {exc.details()}") from None
                if not found:
                    raise EvalError(f"environment {name!r} (rollout.envs) has no test split (no held-out tasks): "
                                    "outrider eval measures held-out tasks only")
                tasks.update({store.task_key(t.env, t.id): t for t in found})
        self.eval_run = self.run.model_copy(update={
            "name": f"{self.run.name}-eval"[:64],
            "redis": self.run.redis.model_copy(update={"url": self.env_stack.redis.url}),
            "stack": self.run.stack.model_copy(update={"addresses": addresses}),
            "rollout": self.run.rollout.model_copy(update={
                "sampling": self.run.rollout.sampling.model_copy(update={"temperature": self.run.evaluation.temperature})
            }),
        })
        self.eval_config_path = self.out / "run.yaml"
        self.eval_config_path.write_text(dump_yaml(self.eval_run))
        return tasks

    def _manifest(self, tasks: dict[str, common_pb2.Task], earlier: dict | None) -> dict:
        models = self.out / store.MODELS_DIR
        manifest = {
            "checkpoints": {
                c.name: {"source": c.source, "model": str(c.folder or models / c.name), "from": c.describe()}
                for c in self._checkpoints
            },
            "base": self.base,
            "tasks": sorted(tasks),
            "n": self.n,
            "ks": list(self.settings.ks),
            "seed": self.seed,
            "env": list(self.run.rollout.envs),
            "temperature": self.run.evaluation.temperature,
            "max_solutions": self.cfg.max_solutions,
            "max_entropy_tokens": self.cfg.max_entropy_tokens,
            "search": self.search,
        }
        if earlier is None:
            return manifest
        changed = [f"{key}: {earlier.get(key)!r} -> {manifest[key]!r}"
                   for key in ("base", "tasks", "n", "seed", "env", "temperature", "max_solutions", "max_entropy_tokens", "search")
                   if earlier.get(key, "none" if key == "search" else None) != manifest[key]]
        for name, info in manifest["checkpoints"].items():
            before = earlier.get("checkpoints", {}).get(name)
            if before is not None and before["source"] != info["source"]:
                changed.append(f"checkpoint {name}: {before['source']!r} -> {info['source']!r}")
        if changed:
            raise EvalError(f"--resume: {self.out} holds an evaluation with other settings ({'; '.join(changed)}); "
                            "use --overwrite or another --out")
        # Checkpoints of the earlier evaluation that this one leaves out stay listed (their files stay).
        manifest["checkpoints"] = {**earlier.get("checkpoints", {}), **manifest["checkpoints"]}
        return manifest

    def _start_workers(self) -> None:
        from outrider.rollout.worker import make_app
        from outrider.train import processes

        logs = self.out / store.LOGS_DIR
        self.app = make_app(self.eval_run)
        self.app.control.purge()  # tasks an interrupted evaluation left queued (system Redis)
        rollout = self.run.rollout
        self.workers = [
            processes.rollout_worker(i, self.eval_config_path, logs, self.restarts, rollout.groups_per_worker)
            for i in range(rollout.workers)
        ]
        for worker in self.workers:
            worker.env.update(self.env_stack.child_env("client"))
            worker.start()

    def _order(self) -> list[Checkpoint]:
        """The base last: it is still served when the solutions are scored."""
        return [c for c in self._checkpoints if c.name != self.base] + [c for c in self._checkpoints if c.name == self.base]

    def _sample_and_score(self, tasks: dict[str, common_pb2.Task]) -> None:
        order = self._order()
        for index, checkpoint in enumerate(order, start=1):
            stored = store.load_samples(self.out, checkpoint.name)
            todo = [key for key in sorted(tasks) if key not in stored]
            is_base = checkpoint.name == self.base
            if not todo and not (is_base and self._unscored(tasks)):
                print(f"{checkpoint.name}: all {len(tasks)} tasks already sampled", flush=True)
                continue
            address = self._serve(checkpoint)
            if todo:
                self._sample(checkpoint, address, tasks, todo, f"{checkpoint.name} [{index}/{len(order)}]", len(tasks) - len(todo))
            if is_base:
                self._score(address, tasks)
            self._stop_policy()

    def _serve(self, checkpoint: Checkpoint) -> str:
        self._check_stop()
        folder = checkpoint.hf_folder(self.out / store.MODELS_DIR)
        policy = self.run.policy.model_copy(update={"model": str(folder), "served_model_name": checkpoint.name, "http_port": None})
        run = self.eval_run.model_copy(update={"policy": policy, "stack": self.eval_run.stack.model_copy(update={"services": ["policy"]})})
        print(f"serving {checkpoint.name} ({checkpoint.describe()}) ...", flush=True)
        self.policy_stack = LocalStack(run, self.out / store.LOGS_DIR / checkpoint.name, auth_dir=self.auth_dir)
        self.policy_stack.start()
        return self.policy_stack.addresses()["policy"]

    def _stop_policy(self) -> None:
        if self.policy_stack is not None:
            self.policy_stack.stop()
            self.policy_stack = None

    def _sample(self, checkpoint: Checkpoint, address: str, tasks, todo: list[str], label: str, done: int) -> None:
        limits = self.run.policy.limits
        # A group's first turn is one prompt with n = chunk, later turns up to chunk prompts.
        chunk = min(self.cfg.chunk or self.n, self.n, limits.max_n, limits.max_prompts)
        dispatcher = TaskDispatcher(self.app, self.cfg.task_retries)
        for key in todo:
            dispatcher.send(key, eval_pb2.EvalTaskRequest(
                checkpoint=checkpoint.name, task=tasks[key], policy_address=address, samples=self.n, chunk=chunk,
                seed=self.seed, max_solutions=self.cfg.max_solutions, max_entropy_tokens=self.cfg.max_entropy_tokens,
                activity_log=str(self.out / store.LOGS_DIR / "activity.jsonl"),
                search="" if self.search == "none" else self.search,
            ))
        progress = Progress(label, len(tasks), done)
        progress.show()
        warned = False

        def stored(key: str, samples: eval_pb2.TaskSamples) -> None:
            nonlocal warned
            store.append_samples(self.out, samples)
            progress.add(samples)
            if samples.entropy_error and not warned:
                warned = True
                print(f"\n  warning: no token entropies for {checkpoint.name}: {samples.entropy_error}", flush=True)

        try:
            while dispatcher.pending:
                self._check_stop()
                self.env_stack.check()
                self.policy_stack.check()
                self._supervise()
                dispatcher.collect(stored)
                time.sleep(0.2)
        finally:
            dispatcher.cancel()
        progress.show(final=True)

    def _supervise(self) -> None:
        from outrider.train import processes

        for worker in self.workers:
            if worker.exit_code() is not None and not processes.restart(worker):
                raise EvalError(f"{worker.describe_exit()}; restart budget spent")

    def _unscored(self, tasks) -> dict[str, list[eval_pb2.TaskSamples]]:
        records = load_records(self.out)
        out = {}
        for name in self.names:
            done = records.get(name, {})
            waiting = [s for key, s in store.load_samples(self.out, name).items() if key in tasks and key not in done]
            if waiting:
                out[name] = waiting
        return out

    def _score(self, address: str, tasks) -> None:
        from outrider.eval.scoring import score_solutions
        from outrider.clients.policy import PolicyClient

        waiting = self._unscored(tasks)
        count = sum(len(s.solutions) for group in waiting.values() for s in group)
        print(f"scoring {count} correct solutions under {self.base} ...", flush=True)
        with PolicyClient(address, credentials=self.env_stack.credentials()) as policy:
            for name, group in waiting.items():
                for samples in group:
                    self._check_stop()
                    store.append_record(self.out, TaskRecord(
                        checkpoint=name, task_id=store.task_key(samples.env, samples.task_id), env=samples.env,
                        samples=samples.samples, correct=samples.correct, first_try=samples.first_try,
                        errors=samples.errors, solutions=tuple(score_solutions(policy, samples.solutions)),
                        entropies=tuple(float(h) for h in samples.entropies), seconds=samples.seconds,
                    ))

    def _report(self, tasks) -> EvalOutcome:
        from outrider.eval.analysis import analyze
        from outrider.eval.report import render_eval_report, summary_table

        records = {name: {k: r for k, r in table.items() if k in tasks}
                   for name, table in load_records(self.out).items() if name in self.names}
        try:
            analysis = analyze(records, self.base, self.n, resamples=self.cfg.resamples, confidence=self.cfg.confidence,
                               seed=self.seed, forking_quantile=self.cfg.forking_quantile)
        except ValueError as exc:
            raise EvalError(f"analysis of {self.out}: {exc}") from None
        analysis["settings"]["search"] = self.search
        index = render_eval_report(self.out, analysis)
        summary = summary_table(analysis)
        if self.search != "none":
            summary = f"each sample is the best-of-search answer of one {self.search} search (rollout.search)\n" + summary
        if self.settings.ks:
            summary += "\n" + _pass_at_ks(records, self._order(), sorted(tasks), self.settings.ks)
        return EvalOutcome(index=index, analysis=analysis, summary=summary)

    def _teardown(self) -> None:
        for worker in self.workers:
            worker.stop()
        self._stop_policy()
        if self.env_stack is not None:
            self.env_stack.stop()


def _first(*values):
    """The first value that is not None (0 stays 0, so a bad --n 0 is refused, not replaced)."""
    return next((v for v in values if v is not None), None)


def _pass_at_ks(records, order: list[Checkpoint], tasks: list[str], ks: list[int]) -> str:
    """pass@k at the --k values asked for, per checkpoint (the unbiased estimator, mean over tasks)."""
    from outrider.eval import stats

    lines = []
    for checkpoint in order:
        table = records[checkpoint.name]
        per_task = stats.per_task_pass_at_k([table[t].samples for t in tasks], [table[t].correct for t in tasks], ks, tasks)
        values = ", ".join(f"pass@{k} {v:.3f}" for k, v in zip(ks, per_task.mean(axis=0)))
        lines.append(f"{checkpoint.name}: {values}")
    return "\n".join(lines)


def boundary_after_training(run: RunConfig) -> EvalOutcome:
    """`evaluation.boundary.enabled`: the run's base model against its final weights,
    into RUN_DIR/eval/ (replacing an earlier one)."""
    run_dir = run.run_dir
    settings = EvalSettings(
        checkpoints=[("base", run.learner.model), ("final", str(run_dir / "final"))],
        base="base", out=run_dir / "eval", overwrite=True,
    )
    return EvalRun(run, settings).execute()

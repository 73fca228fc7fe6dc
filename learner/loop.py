"""The learner's main loop: bus → step → weight sync → next step's demand → checkpoint → commit.

Exactly-once: groups are committed on the bus only after a checkpoint that
contains their update is complete. A learner killed at any point restarts
from its last checkpoint; the groups trained after it come back from the bus
(this consumer's own pending entries first) and are trained again, and groups
a checkpoint holds but the bus had not yet committed are committed at
start-up from the checkpoint's list.

Rank 0 talks to Redis and the policy service; it broadcasts each step's
groups to the other ranks, which all run the same step on their shards.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass, replace

import redis
import torch
import torch.distributed as dist

from outrider.config import RunConfig
from outrider.learner.algorithms import Algorithms, make_kl_controller, make_penalty_controller
from outrider.learner.algos import dynamic_sampling_mask, enough_valid
from outrider.learner.batch import build_batch
from outrider.learner.checkpoint import LearnerState, export_hf, hf_export_folder, load_checkpoint, save_checkpoint
from outrider.learner.engine import frozen_module, init_distributed, shutdown_distributed, trainable_engine
from outrider.learner.metrics_log import MetricsLog
from outrider.learner.samples import render_samples
from outrider.learner.models import load_actor, load_critic, load_reference, load_teacher, model_folder
from outrider.learner.objectives import ConstraintMultipliers, DisagreementKL, component_table
from outrider.learner.status import LearnerStatus
from outrider.learner.step import Models, StepPlan, learner_step
from outrider.learner.weight_sync import WeightPublisher, WeightSyncError
from outrider.process import Watchdog, exit_stalled
from outrider.proto.v1.trajectory_pb2 import INFRA_FAILURE_NONE, TrajectoryGroup
from outrider.transport import Delivery, RedisReceiver

log = logging.getLogger(__name__)


@dataclass
class StepData:
    """What rank 0 hands every rank for one step (the groups as the bus delivered them)."""

    groups: list[TrajectoryGroup]
    lags: list[int]


class Learner:
    def __init__(self, run: RunConfig, resume: bool = False, max_steps: int | None = None):
        self.run_cfg = run
        self.cfg = run.learner
        self.max_steps = self.cfg.max_steps if max_steps is None else max_steps
        init_distributed(self.cfg.engine.backend)
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.status = LearnerStatus(run.run_dir if self.rank == 0 else None)
        # Rank 0 only: the other ranks wait in a collective for as long as rank 0 waits for
        # groups (legitimately long when rollouts are slow); a rank stuck in a collective
        # holds rank 0 there too, whose watchdog then ends it, and torchrun the rest.
        self.watchdog = Watchdog("learner", self.cfg.stall_s if self.rank == 0 else 0, self._stalled).start()
        self.sync_failures = 0
        """Weight syncs failed in a row (`sync.max_failures` stops the learner)."""
        self._phase("loading", 0, "models and optimizer")
        self.seed = run.seed if self.cfg.seed is None else self.cfg.seed
        torch.manual_seed(self.seed)
        self.algos = Algorithms.from_config(self.cfg.algorithm)
        self.kl = make_kl_controller(self.cfg.algorithm)
        self.penalty = make_penalty_controller(self.algos)  # ppo_kl's β; None for other losses
        self.constraints = ConstraintMultipliers(self.cfg.algorithm.constraints)  # λ of reward constraints
        self.disagreement_kl = DisagreementKL(self.cfg.algorithm.kl.disagreement_gain)
        self.models = self._build_models()
        self.checkpoints = run.run_dir / "checkpoints"
        self.state = LearnerState(
            kl_controller=self.kl.state_dict(), penalty_controller=self.penalty.state_dict() if self.penalty else {}
        )
        self.held: list[Delivery] = []  # trained (or skipped), not yet committed
        self._stop = False
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)

        self.receiver: RedisReceiver | None = None
        self.metrics: MetricsLog | None = None
        self._decoder = None
        if self.rank == 0:
            if not run.redis.url:
                raise ValueError("the learner needs redis.url: the bus its rollout workers write to")
            client = redis.Redis.from_url(run.redis.url, socket_timeout=run.redis.socket_timeout_s)
            self.receiver = RedisReceiver(client, run.bus, name=self.cfg.consumer_name)
            self.metrics = MetricsLog(run.run_dir, self.cfg.report_to, self.cfg.metrics_port,
                                      self.cfg.wandb, run.name, run.model_dump(mode="json"))
        self.publisher = WeightPublisher(
            self.cfg.sync,
            self.cfg.sync.address or run.stack.addresses.get("policy"),
            run.run_dir / "weights",
            model_folder(self.cfg.model),
        )
        if resume:
            self._resume()

    def _build_models(self) -> Models:
        cfg = self.cfg
        actor = trainable_engine(load_actor(cfg.model, cfg.engine.gradient_checkpointing), cfg.engine, cfg.optimizer)
        reference = None
        if self.algos.uses_kl:
            reference = frozen_module(load_reference(cfg.reference.model or cfg.model), cfg.engine)
        critic = None
        if cfg.critic.enabled:
            backbone = cfg.critic.model or cfg.model
            module = load_critic(backbone, cfg.engine.gradient_checkpointing, seed=self.seed)
            critic = trainable_engine(module, cfg.engine, cfg.critic.optimizer)
        teacher = None
        if self.algos.distillation.placement.uses_teacher:
            teacher = frozen_module(load_teacher(cfg.algorithm.distillation.teacher, actor.module), cfg.engine)
        return Models(actor=actor, reference=reference, critic=critic, teacher=teacher)

    def _phase(self, phase: str, step: int, detail: str = "") -> None:
        """A phase begins (or a wait goes on): the status file says so, and it is progress.

        The watchdog's clock restarts at every call, so what it bounds is one phase: loading,
        one poll of the bus, one part of an update (its scoring pass, one mini-batch of one
        epoch), one weight sync, one checkpoint. Waiting for groups
        beats at every poll (a poll returns within bus.block_ms, or raises on a Redis
        timeout): slow rollouts are the dispatcher's watchdog's business, not a learner stall."""
        self.status.set(phase, step, detail)
        self.watchdog.beat(f"{phase} step {step}" + (f" ({detail})" if detail else ""))

    def _stalled(self, error) -> None:
        state = getattr(self, "state", None)  # None while the models load
        self.status.set("stalled", state.step if state is not None else 0, str(error))
        exit_stalled(error)

    def _request_stop(self, *_) -> None:
        log.info("stop requested: finishing the current step")
        self._stop = True

    # -- resume ---------------------------------------------------------------

    def _resume(self) -> None:
        state = load_checkpoint(self.checkpoints, self.models.actor, self.models.critic)
        if state is None:
            log.info("no checkpoint in %s: starting fresh", self.checkpoints)
            return
        self.state = state
        self.kl.load_state_dict(state.kl_controller)
        if self.penalty is not None and state.penalty_controller:
            self.penalty.load_state_dict(state.penalty_controller)
        self.constraints.load_state_dict(state.multipliers)
        self.disagreement_kl.baseline = state.disagreement_baseline
        if self.rank == 0 and state.uncommitted_group_ids:
            result = self.receiver.commit_group_ids(state.uncommitted_group_ids)
            log.info("committed %d groups the checkpoint held but the bus had not", len(result.committed))
        self.state.uncommitted_group_ids = []
        log.info("resumed at step %d (policy version %d)", state.step, state.policy_version)

    # -- data -----------------------------------------------------------------

    def _collect(self) -> StepData | None:
        """Rank 0: the next step's groups (None: stop)."""
        wanted = self.cfg.groups_per_step
        taken: list[Delivery] = []
        started = time.monotonic()
        last_lease = started
        # On-demand dispatch (rollout.dispatch) produces what the learner waits for: a step's
        # groups beyond those it holds; nothing once the step is complete (said before
        # training, so before any commit lowers the bus's pending count).
        self.receiver.announce_demand(wanted, held=len(self.held))
        while len(taken) < wanted:
            self._phase("waiting", self.state.step + 1, f"{len(taken)} of {wanted} groups")
            if self._stop:
                break
            for delivery in self.receiver.receive(wanted - len(taken), block_s=0.5):
                if self._admit(delivery):
                    taken.append(delivery)
            now = time.monotonic()
            if self.held and now - last_lease > self.run_cfg.bus.claim_idle_ms / 3000:
                self.receiver.extend_lease(self.held + taken)
                last_lease = now
            timeout = self.cfg.receive_timeout_s
            if timeout and now - started > timeout:
                log.info("no full step of groups within %.0f s (got %d)", timeout, len(taken))
                break
        self.receiver.announce_demand(0, held=len(self.held) + len(taken))
        if not taken or (self._stop and len(taken) < wanted):
            # Unused deliveries stay pending for this consumer: a restart gets them back first.
            return None
        self.held += taken
        lags = [self.state.policy_version - d.group.policy_version for d in taken]
        return StepData([d.group for d in taken], lags)

    def _admit(self, delivery: Delivery) -> bool:
        """Drop stale or signal-less groups (counted) instead of training on them."""
        group = delivery.group
        lag = self.state.policy_version - group.policy_version
        if lag > self.cfg.max_policy_lag and self.cfg.stale_groups == "drop":
            self.receiver.reject(
                delivery,
                f"stale: sampled by version {group.policy_version}, learner at {self.state.policy_version}, "
                f"max_policy_lag {self.cfg.max_policy_lag}",
            )
            self.state.dropped_stale += 1
            return False
        valid = torch.tensor([t.infra_failure == INFRA_FAILURE_NONE for t in group.trajectories], dtype=torch.bool)
        if not bool(enough_valid(valid, torch.zeros(len(valid), dtype=torch.long), self.cfg.algorithm.min_valid).all()):
            # Too few episodes survived infrastructure failures; no weights will contain it.
            self.receiver.commit([delivery])
            self.state.dropped_failed += 1
            return False
        if self.cfg.algorithm.dynamic_sampling:
            rewards = torch.tensor([t.outcome_reward for t in group.trajectories], dtype=torch.float64)[valid]
            if not bool(dynamic_sampling_mask(rewards, torch.zeros(len(rewards), dtype=torch.long)).any()):
                # Workers of this run do not send such groups; one from another producer
                # (or whose infra-failed episodes hid the signal) lands here. No weights
                # will contain it, so it can be committed at once.
                self.receiver.commit([delivery])
                self.state.dropped_uniform += 1
                return False
        return True

    def _broadcast(self, data: StepData | None) -> StepData | None:
        """Rank 0's step data on every rank: one rank keeps the parsed groups as they are;
        several send them serialized (protobuf messages of this package do not pickle)."""
        if self.world == 1:
            return data
        if data is not None:
            self.watchdog.beat(f"sending step {self.state.step + 1}'s groups to the other ranks")
        wire = None if data is None else ([g.SerializeToString() for g in data.groups], data.lags)
        box = [wire]
        dist.broadcast_object_list(box, src=0)
        if self.rank == 0 or box[0] is None:
            return data if self.rank == 0 else None
        groups, lags = box[0]
        return StepData([TrajectoryGroup.FromString(raw) for raw in groups], lags)

    # -- the loop -------------------------------------------------------------

    def run(self) -> LearnerState:
        try:
            self.state.policy_version = self.publisher.reconcile(self.models.actor, self.state.policy_version)
            published = self.state.policy_version
            while not self.max_steps or self.state.step < self.max_steps:
                data = self._broadcast(self._collect() if self.rank == 0 else None)
                if data is None:
                    break
                published = self._train(data) or published
            self._checkpoint_and_commit()
            if self.publisher.enabled and published != self.state.policy_version:
                # The policy ends on the final weights, whatever `sync.every` is.
                self.publisher.publish(self.models.actor, self.state.policy_version)
            final = self.run_cfg.run_dir / "final"
            export_hf(self.models.actor, final, model_folder(self.cfg.model))
            self.status.set("done", self.state.step)
            return self.state
        finally:
            self.watchdog.stop()
            self.publisher.close()
            if self.metrics is not None:
                self.metrics.close()
            shutdown_distributed()

    def _train(self, data: StepData) -> int | None:
        """One step; returns the version published to the policy, if any."""
        started = time.perf_counter()
        groups = data.groups
        batch = build_batch(groups)
        component_metrics: dict[str, float] = {}
        if (components := component_table(groups)) is not None:
            # Lagrangian constraints shape R with this step's λ, then λ moves (objectives.py).
            rewards, component_metrics = self.constraints.step(components, batch.rewards, batch.valid)
            batch = replace(batch, rewards=rewards)
            self.state.multipliers = self.constraints.state_dict()
        plan = StepPlan(
            rank=self.rank,
            world_size=self.world,
            token_budget=self.cfg.engine.micro_batch_tokens,
            mini_batches=self.cfg.algorithm.mini_batches,
            epochs=self.cfg.algorithm.epochs,
            seed=self.seed,
            step=self.state.step,
            scoring_pass=self.cfg.algorithm.scoring_pass,
            policy_version=self.state.policy_version,
        )
        penalty_coef = None if self.penalty is None else self.penalty.value
        sizes = f"{batch.size} sequences, {int(batch.mask.sum()):,} trained tokens"
        self._phase("update", self.state.step + 1, sizes)
        kl_scale = self.disagreement_kl.scale(component_metrics)  # 1 unless the heuristic is on
        self.state.disagreement_baseline = self.disagreement_kl.baseline
        kl_coef = self.kl.value * kl_scale

        def progress(doing: str) -> None:
            self._phase("update", self.state.step + 1, f"{sizes}: {doing}")

        metrics = learner_step(self.models, self.algos, batch, kl_coef, plan, penalty_coef, progress) | component_metrics
        if "kl_ref" in metrics:
            metrics["kl_coef"] = kl_coef
            metrics["kl_disagreement_scale"] = kl_scale
            self.kl.update(metrics["kl_ref"], batch.size)
        if self.penalty is not None:
            # PPO's rule reads the KL(π_old‖π_θ) the update itself measured (k3, token mean).
            self.penalty.update(metrics["actor/approx_kl_k3"], batch.size)
            self.state.penalty_controller = self.penalty.state_dict()
        state = self.state
        state.step += 1
        state.policy_version += 1
        ids = [g.group_id for g in groups]
        state.trained_group_ids += ids
        state.uncommitted_group_ids += ids
        state.samples += batch.size
        state.kl_controller = self.kl.state_dict()
        # Publish first: the next step's rollouts (on-demand dispatch: all of them) wait for
        # the new weights, not for the checkpoint, which is then written while they run. A
        # crash between the two loses nothing: the groups are committed only after the
        # checkpoint, and `reconcile` republishes the restored weights under a newer version.
        published = None
        if self.publisher.enabled and state.step % self.cfg.sync.every == 0:
            self._phase("sync", state.step, f"weights version {state.policy_version} to the policy")
            published = self._publish(metrics)
        if self.rank == 0 and not self._stop and (not self.max_steps or state.step < self.max_steps):
            # On-demand dispatch starts the next step's rollouts now, on the new weights,
            # while the checkpoint is written (a commit keeps this demand right: the bus
            # takes committed groups out of `held` with `pending`).
            self.receiver.announce_demand(self.cfg.groups_per_step, held=len(self.held))
        if state.step % self.cfg.checkpoint_every == 0:
            self._phase("checkpoint", state.step)
            checkpoint_started = time.perf_counter()
            self._checkpoint_and_commit()
            metrics["time/checkpoint_seconds"] = time.perf_counter() - checkpoint_started
        if self.cfg.export_hf_every and state.step % self.cfg.export_hf_every == 0:  # collective, like the checkpoint
            export_hf(self.models.actor, hf_export_folder(self.run_cfg.run_dir, state.step), model_folder(self.cfg.model))
        seconds = time.perf_counter() - started
        tokens = float(batch.mask.sum())
        metrics |= {
            "reward_mean": float(batch.rewards[batch.valid].mean()),  # infra failures measured nothing
            "trajectories": float(batch.size),
            "solved_rate": float(batch.correct[batch.valid].float().mean()),
            "response_tokens_mean": tokens / batch.size,
            "tokens_per_s": tokens / seconds,
            "step_seconds": seconds,
            "policy_lag_mean": sum(data.lags) / len(data.lags),
            "policy_lag_max": float(max(data.lags)),
            "dropped_stale": float(state.dropped_stale),
            "dropped_uniform": float(state.dropped_uniform),
            "dropped_failed": float(state.dropped_failed),
            "policy_version": float(state.policy_version),
        }
        if self.rank == 0:
            bus = self.receiver.stats()
            metrics["bus_queued"] = float(bus.queued)
            # Signal-less groups the workers did not send (dynamic sampling), run total.
            metrics["discarded_no_signal"] = float(bus.discarded)
            self.metrics.write(state.step, metrics, data.lags)
            if self.cfg.log_samples:
                self.metrics.write_samples(state.step, render_samples(self._tokenizer(), groups, self.cfg.log_samples))
            log.info(
                "step %d  loss %.4f  reward %.3f  entropy %.3f  %.0f tok/s",
                state.step, metrics.get("actor/loss", float("nan")), metrics["reward_mean"],
                metrics["entropy"], metrics["tokens_per_s"],
            )
        return published

    def _publish(self, metrics: dict[str, float]) -> int | None:
        """Publish this step's weights; the version, or None after a failure a later sync
        can get past (the policy keeps serving its previous version meanwhile: rollouts go
        on, a little more off-policy, within max_policy_lag). `sync.max_failures` failures
        in a row stop the learner with the error (a restart reconciles the versions)."""
        try:
            metrics |= self.publisher.publish(self.models.actor, self.state.policy_version)
        except WeightSyncError as exc:
            self.sync_failures += 1
            metrics["sync/failures"] = float(self.sync_failures)
            limit = self.cfg.sync.max_failures
            log.error("%s (%d failed in a row, learner.sync.max_failures %d)", exc, self.sync_failures, limit)
            if self.sync_failures >= limit:
                raise
            return None
        self.sync_failures = 0
        metrics["sync/failures"] = 0.0
        return self.state.policy_version

    def _tokenizer(self):
        """The policy's tokenizer, loaded on first use (rank 0 decodes the sample episodes)."""
        if self._decoder is None:
            from transformers import AutoTokenizer

            self._decoder = AutoTokenizer.from_pretrained(model_folder(self.cfg.model))
        return self._decoder

    def _checkpoint_and_commit(self) -> None:
        # Decided on state every rank shares: saving is collective.
        if not self.state.uncommitted_group_ids:
            return
        save_checkpoint(self.checkpoints, self.models.actor, self.models.critic, self.state, self.cfg.keep_checkpoints)
        if self.rank == 0:
            result = self.receiver.commit(self.held)
            if result.duplicates:
                log.error("groups committed by another consumer meanwhile: %s", result.duplicates)
        self.held = []
        self.state.uncommitted_group_ids = []

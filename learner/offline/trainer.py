"""The offline step loop shared by `outrider sft` and `outrider dpo`.

The actor is the RL learner's (outrider.learner.engine / models / checkpoint): one
DeepSpeed engine, gloo on CPU, NCCL on GPU. A step takes `batch_size` examples of a
seeded shuffle, splits them over the ranks with balanced token counts and packs each
rank's share into token-budgeted micro-batches (outrider.learner.batch); every rank runs
the same number of passes (an empty slot is a stand-in whose loss is multiplied by 0, as
ZeRO-3 needs), calls backward on each and steps once. Rank 0 writes metrics.jsonl and a
progress line per step; the run ends with a checkpoint and an HF export in final/.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

import torch
import torch.distributed as dist

from outrider.config.offline import OfflineTrainConfig
from outrider.learner.batch import plan_micro_batches
from outrider.learner.checkpoint import LearnerState, export_hf, save_checkpoint
from outrider.learner.engine import device_of, init_distributed, trainable_engine
from outrider.learner.metrics_log import MetricsLog
from outrider.learner.models import load_actor, model_folder
from outrider.learner.step import MetricSums

log = logging.getLogger(__name__)


class Objective(Protocol):
    def cost(self, example: Any) -> int: ...
    def prepare(self, examples: Sequence[Any]) -> dict: ...
    def micro_loss(self, actor, items: Sequence[Any], indices: Sequence[int], step: dict, world: int, device): ...
    def step_metrics(self, totals: dict[str, float]) -> dict[str, float]: ...


def step_order(count: int, batch_size: int, epochs: int, seed: int) -> list[list[int]]:
    """Example indices of every step: each epoch a fresh permutation (seeded by seed and
    epoch, so every rank and a rerun agree), cut into batches; the last may be short."""
    steps = []
    for epoch in range(epochs):
        order = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 1000 + epoch)).tolist()
        steps += [order[i : i + batch_size] for i in range(0, count, batch_size)]
    return steps


def start(cfg: OfflineTrainConfig) -> tuple[int, int]:
    """Join (or form) the process group and seed; (rank, world size)."""
    init_distributed(cfg.engine.backend)
    torch.manual_seed(cfg.seed)
    return dist.get_rank(), dist.get_world_size()


def train(cfg: OfflineTrainConfig, examples: Sequence[Any], objective: Objective, max_steps: int | None = None) -> LearnerState:
    """Train the actor on `examples` with `objective`; returns the final learner state."""
    rank, world = dist.get_rank(), dist.get_world_size()
    actor = trainable_engine(load_actor(cfg.model, cfg.engine.gradient_checkpointing), cfg.engine, cfg.optimizer)
    device = device_of(actor.module)
    limit = cfg.max_steps if max_steps is None else max_steps
    steps = step_order(len(examples), cfg.batch_size, cfg.epochs, cfg.seed)
    per_epoch = len(steps) // cfg.epochs
    if limit:
        steps = steps[:limit]
    metrics_log = MetricsLog(cfg.run_dir, cfg.report_to, None, cfg.wandb, cfg.name, cfg.model_dump(mode="json")) if rank == 0 else None
    checkpoints = cfg.run_dir / "checkpoints"
    state = LearnerState()
    costs = [objective.cost(e) for e in examples]
    try:
        for indices in steps:
            started = time.perf_counter()
            totals = _step(actor, examples, objective, indices, costs, cfg.engine.micro_batch_tokens, rank, world, device)
            state.step += 1
            state.policy_version += 1
            state.samples += len(indices)
            metrics = objective.step_metrics(totals)
            grad_norm = actor.get_global_grad_norm()
            metrics |= {
                "examples": float(len(indices)),
                "epoch": float((state.step - 1) // per_epoch),
                "lr": float(actor.get_lr()[0]),
                "step_seconds": time.perf_counter() - started,
            }
            if grad_norm is not None:
                metrics["grad_norm"] = float(grad_norm)
            if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0:
                save_checkpoint(checkpoints, actor, None, state, cfg.keep_checkpoints)
            if metrics_log is not None:
                metrics_log.write(state.step, metrics, [])
                shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k not in ("examples", "epoch", "lr"))
                print(f"step {state.step}/{len(steps)}  {shown}", flush=True)
        if not cfg.checkpoint_every or state.step % cfg.checkpoint_every:
            save_checkpoint(checkpoints, actor, None, state, cfg.keep_checkpoints)
        final = export_hf(actor, cfg.run_dir / "final", model_folder(cfg.model))
        if rank == 0:
            print(f"checkpoint: {checkpoints}  HF export: {final}", flush=True)
        return state
    finally:
        if metrics_log is not None:
            metrics_log.close()


def _step(actor, examples, objective: Objective, indices: list[int], costs: list[int], budget: int, rank: int, world: int, device) -> dict[str, float]:
    """Backward over this rank's micro-batches of one step, then one optimizer step;
    the step's metric totals over all ranks."""
    step_info = objective.prepare([examples[i] for i in indices])
    plan = plan_micro_batches(list(range(len(indices))), [costs[i] for i in indices], world, budget)[rank]
    sums = MetricSums()
    for rows in plan:
        real = bool(rows)
        chosen = [indices[r] for r in rows] if real else [indices[0]]
        loss, metrics = objective.micro_loss(actor, [examples[i] for i in chosen], chosen, step_info, world, device)
        if not real:
            loss = loss * 0.0
        actor.backward(loss, scale_wrt_gas=False)
        if real:
            for name, value in metrics.items():
                sums.total(name, value)
    actor.step()
    _, totals = sums.reduced()
    return totals


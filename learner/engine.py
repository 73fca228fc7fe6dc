"""DeepSpeed engines for the learner's models, on CPU (gloo) or GPU (NCCL).

One `deepspeed.initialize` per trainable model (actor, critic), each with its
own optimizer; the frozen reference model is wrapped without an optimizer
under ZeRO-3 (so its parameters are sharded too) and kept as a plain module
otherwise.

Gradient accumulation is unmanaged (`managed_gradient_accumulation: false`):
a learner step packs its sequences into however many token-budgeted
micro-batches it needs, calls `backward` on each and `step` once, and
DeepSpeed reduces gradients across ranks in `step`.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta

import deepspeed
import torch
import torch.distributed as dist
from torch import nn

from outrider.config.learner import EngineConfig, OptimizerConfig
from outrider.process import free_port

log = logging.getLogger(__name__)


def init_distributed(backend: str = "auto", timeout_s: float = 1800) -> None:
    """Join the process group torchrun/deepspeed set up (a group of one without a launcher)."""
    if dist.is_initialized():
        return
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    os.environ.setdefault("DS_ACCELERATOR", "cuda" if backend == "nccl" else "cpu")
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}.items():
        os.environ.setdefault(key, value)
    if "MASTER_PORT" not in os.environ:
        os.environ["MASTER_PORT"] = str(free_port())
    deepspeed.init_distributed(dist_backend=backend, timeout=timedelta(seconds=timeout_s))
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))


def shutdown_distributed() -> None:
    # Without the barrier a ZeRO-3 run sometimes aborts at exit after finishing.
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def deepspeed_config(engine: EngineConfig, optimizer: OptimizerConfig | None) -> dict:
    """The DeepSpeed JSON config for one model."""
    zero: dict = {"stage": engine.zero_stage}
    if engine.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    if engine.offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    if engine.zero_stage == 3:
        # Gather the full weights at save time so HF exports need no conversion step.
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    config: dict = {
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "managed_gradient_accumulation": False,
        "zero_optimization": zero,
        "bf16": {"enabled": engine.dtype == "bf16"},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if optimizer is not None:
        config["optimizer"] = {
            "type": "AdamW",
            "params": {
                "lr": optimizer.lr,
                "betas": list(optimizer.betas),
                "eps": optimizer.eps,
                "weight_decay": optimizer.weight_decay,
                # torch's AdamW needs no compiled op; offload needs DeepSpeedCPUAdam.
                "torch_adam": not engine.offload_optimizer,
            },
        }
        # A bound too large to bite when clipping is off: the global norm is
        # then still computed (and reported) by the same code path.
        config["gradient_clipping"] = optimizer.grad_clip if optimizer.grad_clip is not None else 1e30
        if optimizer.warmup_steps:
            config["scheduler"] = {
                "type": "WarmupLR",
                "params": {
                    "warmup_min_lr": 0.0,
                    "warmup_max_lr": optimizer.lr,
                    "warmup_num_steps": optimizer.warmup_steps,
                    "warmup_type": "linear",
                },
            }
    return config


def trainable_engine(model: nn.Module, engine: EngineConfig, optimizer: OptimizerConfig):
    """A DeepSpeed engine with optimizer (and scheduler) for `model`."""
    ds_engine, _, _, _ = deepspeed.initialize(
        model=model,
        model_parameters=[p for p in model.parameters() if p.requires_grad],
        config=deepspeed_config(engine, optimizer),
    )
    if not ds_engine.zero_optimization() and not ds_engine.bfloat16_enabled():
        _record_grad_norm(ds_engine)
    return ds_engine


def _record_grad_norm(ds_engine) -> None:
    """Without ZeRO (fp32), DeepSpeed clips with a norm it then discards; keep it
    so `get_global_grad_norm()` reports it as it does for the ZeRO optimizers."""
    from deepspeed.runtime.utils import clip_grad_norm_

    def clip_and_record() -> None:
        norm = clip_grad_norm_(ds_engine.module.parameters(), ds_engine.gradient_clipping(), mpu=ds_engine.mpu)
        ds_engine._global_grad_norm = float(norm)

    ds_engine.clip_fp32_gradients = clip_and_record


def frozen_module(model: nn.Module, engine: EngineConfig) -> nn.Module:
    """The reference model, sharded like the actor under ZeRO-3, else replicated."""
    if engine.zero_stage == 3:
        ds_engine, _, _, _ = deepspeed.initialize(model=model, config=deepspeed_config(engine, None))
        ds_engine.eval()
        return ds_engine
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    dtype = torch.bfloat16 if engine.dtype == "bf16" else torch.float32
    return model.to(device=device, dtype=dtype).eval()


def device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device

"""Learner training throughput: DeepSpeed versus a plain PyTorch loop, in one run.

    .venv/bin/python bench/learner.py [--model smollm2-135m-instruct] [--batch 4] [--seq 128] [--steps 3]

For each precision (fp32, bf16) and rank count (1, 2) it runs the same
forward / policy-gradient loss / backward / AdamW step on the same data
  (a) with a plain PyTorch loop (DistributedDataParallel over gloo or NCCL),
  (b) with the learner's DeepSpeed engines at ZeRO-0 and ZeRO-2,
and reports training tokens/s and DeepSpeed's overhead ratio DS / plain.
On a GPU it also reports MFU (model FLOPs utilisation, 6·N·tokens/s over the
device's peak bf16 FLOP/s). Each configuration runs in fresh processes
(torchrun), one after another.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

RESULT = "BENCH_RESULT "
# Dense bf16 peak FLOP/s by device name fragment (for MFU).
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def worker(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    from outrider.config.learner import EngineConfig, OptimizerConfig
    from outrider.learner.engine import init_distributed, trainable_engine
    from outrider.learner.models import load_actor

    init_distributed("auto")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    torch.manual_seed(0)
    model = load_actor(args.model)
    params = sum(p.numel() for p in model.parameters())
    vocab = model.config.vocab_size
    per_rank = args.batch // world
    generator = torch.Generator().manual_seed(rank)
    data = [torch.randint(0, vocab, (per_rank, args.seq), generator=generator) for _ in range(args.steps + 1)]
    advantages = torch.randn(per_rank, args.seq - 1, generator=generator)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32

    if args.mode == "plain":
        model = model.to(device=device, dtype=dtype)
        if world > 1:
            model = torch.nn.parallel.DistributedDataParallel(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)

        def train_step(ids):
            logits = model(input_ids=ids).logits[:, :-1].float()
            logprobs = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]
            loss = -(advantages.to(device) * logprobs).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    else:
        engine = trainable_engine(
            model, EngineConfig(zero_stage=args.zero, dtype=args.dtype), OptimizerConfig(lr=1e-6, grad_clip=1.0)
        )

        def train_step(ids):
            logits = engine(input_ids=ids).logits[:, :-1].float()
            logprobs = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]
            loss = -(advantages.to(device) * logprobs).mean()
            engine.backward(loss, scale_wrt_gas=False)
            engine.step()

    train_step(data[0].to(device))  # warm-up: allocations, kernels, first reduction
    if device.type == "cuda":
        torch.cuda.synchronize()
    dist.barrier()
    started = time.perf_counter()
    for ids in data[1:]:
        train_step(ids.to(device))
    if device.type == "cuda":
        torch.cuda.synchronize()
    dist.barrier()
    seconds = time.perf_counter() - started
    tokens_per_s = args.batch * args.seq * args.steps / seconds
    if rank == 0:
        result = {"tokens_per_s": tokens_per_s, "params": params, "device": str(device)}
        if device.type == "cuda":
            name = torch.cuda.get_device_name()
            peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
            if peak:
                result["mfu"] = 6 * params * tokens_per_s / (peak * world)
            result["gpu"] = name
        print(RESULT + json.dumps(result), flush=True)
    dist.barrier()
    dist.destroy_process_group()


def run_one(args: argparse.Namespace, mode: str, dtype: str, ranks: int, zero: int) -> dict | None:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
        os.path.abspath(__file__), "--worker", "--mode", mode, "--dtype", dtype, "--zero", str(zero),
        "--model", args.model, "--batch", str(args.batch), "--seq", str(args.seq), "--steps", str(args.steps),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // ranks))}
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    for line in out.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    print(f"  {mode} {dtype} ranks={ranks} zero={zero} FAILED:\n{out.stdout[-1500:]}\n{out.stderr[-1500:]}")
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--batch", type=int, default=4, help="sequences per optimizer step (all ranks)")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up step)")
    parser.add_argument("--ranks", default="1,2")
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["plain", "ds"], default="ds", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--zero", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    from outrider.models import resolve_model

    resolve_model(args.model)  # materialize once, outside the timed runs
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; model {args.model}; "
          f"{args.batch} x {args.seq} tokens per step, {args.steps} timed steps")
    print(f"{'dtype':<6}{'ranks':>6}  {'plain tok/s':>12}  {'ZeRO-0 tok/s':>13}{'ratio':>7}  {'ZeRO-2 tok/s':>13}{'ratio':>7}")
    for dtype in args.dtypes.split(","):
        for ranks in (int(r) for r in args.ranks.split(",")):
            plain = run_one(args, "plain", dtype, ranks, 0)
            zero0 = run_one(args, "ds", dtype, ranks, 0)
            zero2 = run_one(args, "ds", dtype, ranks, 2)
            if not (plain and zero0 and zero2):
                continue
            base = plain["tokens_per_s"]
            line = (f"{dtype:<6}{ranks:>6}  {base:>12.1f}  {zero0['tokens_per_s']:>13.1f}{zero0['tokens_per_s'] / base:>7.2f}"
                    f"  {zero2['tokens_per_s']:>13.1f}{zero2['tokens_per_s'] / base:>7.2f}")
            if "mfu" in zero2:
                line += f"   MFU plain {plain.get('mfu', 0):.1%} ZeRO-2 {zero2['mfu']:.1%}"
            print(line, flush=True)


if __name__ == "__main__":
    main()

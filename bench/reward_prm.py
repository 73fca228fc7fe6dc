"""PRM scoring throughput (steps/s) of a SmolLM2-135M-sized scalar-head scorer on CPU.

    .venv/bin/python bench/reward_prm.py [--trajectories 48] [--batch-size 8] [--no-served]

The scorer is SmolLM2-135M-Instruct's backbone (the built-in model, materialized
offline) with a one-label `score` head, float32 on the CPU. Two workloads of
multi-step solutions: `short` (the synthetic arithmetic set, ~15 tokens per
step) and `long` (the same steps padded with explanation, ~60 tokens per step,
6-8 steps). Methods, in the same run:
  (a) Outrider: one causal pass per trajectory, scores read at every step's
      separator (ScalarHeadPRM.score);
  (b) baseline: one forward pass per step prefix, pooled by the HF model
      itself (what scoring "each prefix" naively costs);
  (c) (a) behind the gRPC service: ScoreSteps end to end.
(a) and (b) must agree (max |Δs| is printed); reports steps per second of
process CPU time (robust on a shared machine when run with --threads 1) and
of wall-clock time, and the ratio a/b.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import tempfile
import time

import numpy as np
import torch

from outrider.services.reward.prm import dataset as ds
from outrider.services.reward.prm.scalar_head import ScalarHeadPRM, pad_batch
from outrider.services.reward.prm.train import pretrained_scorer

FILLER = (
    " We write the numbers down, check the operation once more against the problem statement,"
    " and keep the intermediate result for the next step of the computation."
)


def workload(kind: str, n: int, seed: int) -> list[ds.StepsRecord]:
    rng = random.Random(seed)
    records = []
    while len(records) < n:
        record = ds.make_step_records(1, seed=rng.randrange(10**9), corrupt_fraction=0.0)[0]
        if kind == "long":
            steps = tuple(f"Step {i + 1}: {s}.{FILLER}" for i, s in enumerate(record.steps * 2))
            record = ds.StepsRecord(record.prompt, steps, (1,) * len(steps))
        records.append(record)
    return records


def encode(prm: ScalarHeadPRM, records):
    out = []
    for r in records:
        messages, spans = ds.as_conversation(r.prompt, r.steps)
        out.append(prm.encode(messages, spans))
    return out


@torch.inference_mode()
def per_prefix(model, encoded, batch_size: int, pad_id: int) -> list[np.ndarray]:
    """Baseline: the HF model's own pooled forward on every step prefix."""
    prefixes = [(i, e.ids[: end + 1]) for i, e in enumerate(encoded) for end in e.ends]
    order = sorted(range(len(prefixes)), key=lambda k: len(prefixes[k][1]))
    scores = np.zeros(len(prefixes))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        ids, mask = pad_batch([prefixes[k][1] for k in chunk], pad_id)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, 0]
        scores[chunk] = torch.sigmoid(logits.double()).numpy()
    result, offset = [], 0
    for e in encoded:
        result.append(scores[offset : offset + len(e.ends)])
        offset += len(e.ends)
    return result


def timed(fn, repeats: int) -> tuple[float, float, object]:
    """Best wall-clock and best process CPU seconds of `repeats` runs, and the last result.

    On a shared machine wall-clock time measures the neighbours too; with one
    torch thread the process's CPU time is the work itself.
    """
    fn()  # warm-up: the first passes over fresh weights are several times slower
    best_wall, best_cpu, value = float("inf"), float("inf"), None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        value = fn()
        best_wall, best_cpu = min(best_wall, time.perf_counter() - wall), min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu, value


async def served_rate(model, tokenizer, records, batch_size: int, repeats: int) -> float:
    import grpc

    from outrider.config import RewardServiceConfig, ServerConfig
    from outrider.config.reward import RewardLimits, ScalarHeadPRMConfig
    from outrider.proto.v1 import common_pb2, reward_pb2, reward_pb2_grpc
    from outrider.services.reward.server import create_server

    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        prm_cfg = ScalarHeadPRMConfig(model=folder, batch_size=batch_size, device="cpu")
        cfg = RewardServiceConfig(server=ServerConfig(metrics_port=None), prm=prm_cfg, limits=RewardLimits(max_trajectory_tokens=8192))
        built = await create_server(cfg)
    await built.start()
    items = []
    for r in records:
        messages, _ = ds.as_conversation(r.prompt, r.steps)
        items.append(reward_pb2.StepsItem(conversation=[common_pb2.ChatMessage(role=m.role, content=m.content) for m in messages]))
    steps = sum(len(r.steps) for r in records)
    best_wall, best_cpu = float("inf"), float("inf")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as channel:
        stub = reward_pb2_grpc.RewardServiceStub(channel)
        await stub.ScoreSteps(reward_pb2.ScoreStepsRequest(items=items))  # warm-up
        for _ in range(repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            reply = await stub.ScoreSteps(reward_pb2.ScoreStepsRequest(items=items))
            best_wall, best_cpu = min(best_wall, time.perf_counter() - wall), min(best_cpu, time.process_time() - cpu)
            assert all(r.status.code == common_pb2.ItemStatus.OK for r in reply.results)
    await built.stop(0)
    return steps / best_wall, steps / best_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trajectories", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-served", action="store_true", help="skip the gRPC measurement")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from outrider.models import resolve_model

    path = resolve_model("smollm2-135m-instruct")
    model, tokenizer = pretrained_scorer(path)
    model.eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    prm = ScalarHeadPRM.from_model(model, tokenizer, batch_size=args.batch_size)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, {torch.get_num_threads()} torch threads")
    print(f"scorer: {path.name} backbone + score head ({params:.0f}M params, float32)")
    print(f"{args.trajectories} trajectories per workload, batch size {args.batch_size}, best of {args.repeats}")
    for kind in ("short", "long"):
        records = workload(kind, args.trajectories, seed=7)
        encoded = encode(prm, records)
        steps = sum(len(e.ends) for e in encoded)
        tokens = sum(len(e.ids) for e in encoded)
        ours_wall, ours_cpu, ours = timed(lambda: prm.score(encoded), args.repeats)
        base_wall, base_cpu, base = timed(lambda: per_prefix(model, encoded, args.batch_size, prm.pad_id), args.repeats)
        diff = max(float(np.max(np.abs(a - b))) for a, b in zip(ours, base, strict=True))
        line = (
            f"{kind:>5}: {steps} steps, {tokens / len(encoded):.0f} tokens/trajectory, max |ds| {diff:.1e}\n"
            f"       one pass   {steps / ours_cpu:7.1f} steps/CPU-s  {steps / ours_wall:7.1f} steps/s wall\n"
            f"       per prefix {steps / base_cpu:7.1f} steps/CPU-s  {steps / base_wall:7.1f} steps/s wall"
            f"   ratio {base_cpu / ours_cpu:.2f}x (CPU), {base_wall / ours_wall:.2f}x (wall)"
        )
        if not args.no_served:
            wall_rate, cpu_rate = asyncio.run(served_rate(model, tokenizer, records, args.batch_size, args.repeats))
            line += f"\n       served     {cpu_rate:7.1f} steps/CPU-s  {wall_rate:7.1f} steps/s wall"
        print(line, flush=True)


if __name__ == "__main__":
    main()

"""One real learner step on a GRPO-shaped batch, phase by phase.

    .venv/bin/python bench/learner_step.py [--model smollm2-135m-instruct] [--groups 8] [--group-size 8]
        [--prompt 45] [--mean-completion 42] [--max-completion 128] [--repeats 3] [--threads N]
        [--variants prefix,packed] [--ppo] [--mini-batches M] [--epochs E]

Builds `groups × group_size` trajectories shaped like the vs-TRL workload (one shared
prompt per group, completion lengths drawn around a mean, 0/1 rewards with a mixed
group signal), runs `outrider.learner.step.learner_step` on the learner's real DeepSpeed
engine (1 rank, gloo) and reports, per step, the seconds of the scoring pass (π_old and
entropies before any update; skipped where it is redundant) and of the update
(forward/backward/AdamW), plus tokens/s. The first step is a warm-up and not counted.

Variants, run one after the other on the same batch and the same fresh weights:
  baseline   the learner as of 2026-11-21: a separate scoring pass, every prompt
             recomputed for each of its rows, logits at every position;
  prefix     no redundant scoring pass, each prompt once, LM head only at trained
             targets (outrider.learner.forward), suffixes right-padded and micro-batches
             cut by padded size (the defaults of 2026-12-01 until the next variant);
  packed     the defaults: as prefix, and the suffix pass on real tokens only, with
             micro-batches cut by real tokens (outrider.learner.forward, "Packed suffix").

--ppo: the step of examples/ppo-guess-number-prm.yaml instead of GRPO's: GAE on a value
critic (a second DeepSpeed engine, its own forward and backward per mini-batch), a frozen
reference model for the k1 KL penalty in the reward, so the scoring pass runs three
forwards (π_old, reference, values) before `--epochs` × `--mini-batches` updates.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from functools import partial


def build_groups(args: argparse.Namespace, vocab: int):
    import random

    from outrider.proto.v1.trajectory_pb2 import Trajectory, TrajectoryGroup, Turn

    rng = random.Random(0)
    groups = []
    for g in range(args.groups):
        prompt = [rng.randrange(3, vocab) for _ in range(args.prompt + rng.randrange(-3, 4))]
        group = TrajectoryGroup(group_id=f"bench-{g}", env="bench", task_id=f"t{g}", policy_version=0)
        for i in range(args.group_size):
            length = max(2, min(args.max_completion, int(rng.expovariate(1 / args.mean_completion))))
            completion = [rng.randrange(3, vocab) for _ in range(length)]
            group.trajectories.append(
                Trajectory(
                    trajectory_id=f"{group.group_id}/{i}",
                    prompt_length=len(prompt),
                    token_ids=prompt + completion,
                    logprobs=[0.0] * len(prompt) + [-2.0] * length,
                    loss_mask=[False] * len(prompt) + [True] * length,
                    turns=[Turn(start=len(prompt), completion_length=length, policy_version=0)],
                    outcome_reward=float(rng.random() < 0.4),
                )
            )
        groups.append(group)
    return groups


PPO = {
    "advantage": {"name": "gae", "params": {"gamma": 1.0, "lam": 0.95}},
    "kl": {"placement": "reward", "estimator": {"name": "k1"}},
}
"""The algorithm settings of examples/ppo-guess-number-prm.yaml that change the step's work."""

VARIANTS = ("baseline", "prefix", "packed")
"""baseline: the learner of 2026-11-21; prefix: each prompt once, no scoring pass (2026-12-01,
morning), padded suffixes; packed: also the suffixes without padding (the default since)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--prompt", type=int, default=45, help="prompt tokens (chat template included)")
    parser.add_argument("--mean-completion", type=float, default=42.0)
    parser.add_argument("--max-completion", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--micro-batch-tokens", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--mini-batches", type=int, default=1)
    parser.add_argument("--ppo", action="store_true", help="critic + reference + GAE, as examples/ppo-guess-number-prm.yaml")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--variants", default="prefix,packed", help=f"comma-separated: {', '.join(VARIANTS)}")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from outrider.config.learner import LearnerConfig
    from outrider.learner.algorithms import Algorithms
    from outrider.learner.batch import build_batch
    from outrider.learner.engine import init_distributed, shutdown_distributed, trainable_engine
    from outrider.learner.engine import frozen_module
    from outrider.learner.models import load_actor, load_critic, load_reference
    import outrider.learner.step as step_module
    from outrider.learner.models import token_logprobs
    from outrider.learner.step import Models, StepPlan, learner_step

    init_distributed("gloo")
    cfg = LearnerConfig.model_validate(
        {
            "model": args.model,
            "optimizer": {"lr": 1e-6},
            "engine": {"micro_batch_tokens": args.micro_batch_tokens},
            "algorithm": {
                "advantage": {"name": "grpo"},
                "policy_loss": {"name": "ppo_clip"},
                "aggregation": {"name": "seq_mean_token_mean"},
                "epochs": args.epochs,
                "mini_batches": args.mini_batches,
            } | (PPO if args.ppo else {}),
            "critic": {"enabled": args.ppo},
        }
    )
    algos = Algorithms.from_config(cfg.algorithm)
    batch = None
    table = []
    import outrider.learner.forward as forward_module

    packs, packs_step = forward_module.supports_packed_suffix, step_module.packs_without_padding
    for variant in args.variants.split(","):
        if variant not in VARIANTS:
            raise SystemExit(f"--variants: unknown {variant!r}; valid: {', '.join(VARIANTS)}")
        baseline = variant == "baseline"
        step_module.token_logprobs = partial(token_logprobs, shared_prefix=not baseline)
        packed = variant == "packed"
        forward_module.supports_packed_suffix = packs if packed else (lambda *_: False)
        step_module.packs_without_padding = packs_step if packed else (lambda *_: False)
        torch.manual_seed(0)
        actor = trainable_engine(load_actor(cfg.model), cfg.engine, cfg.optimizer)
        models = Models(actor=actor)
        if args.ppo:
            models.reference = frozen_module(load_reference(cfg.model), cfg.engine)
            models.critic = trainable_engine(load_critic(cfg.model), cfg.engine, cfg.critic.optimizer)
        if batch is None:
            batch = build_batch(build_groups(args, actor.module.config.vocab_size))
        rows = []
        for step in range(args.repeats + 1):
            plan = StepPlan(rank=0, world_size=1, token_budget=cfg.engine.micro_batch_tokens, mini_batches=args.mini_batches,
                            epochs=args.epochs, seed=0, step=step, scoring_pass="always" if baseline else "auto")
            started = time.perf_counter()
            metrics = learner_step(models, algos, batch, 0.05 if args.ppo else 0.0, plan)
            row = {
                "variant": variant,
                "step": step,
                "seconds": time.perf_counter() - started,
                "score_seconds": metrics["time/score_seconds"],
                "update_seconds": metrics["time/update_seconds"],
                "loss": metrics["actor/loss"],
            }
            print(json.dumps(row), flush=True)
            if step:
                rows.append(row)
        table.append((variant, {k: statistics.median(r[k] for r in rows) for k in ("seconds", "score_seconds", "update_seconds")}))
        del actor, models
    tokens = int(batch.attention_mask.sum())
    trained = int(batch.mask.sum())
    print(f"\n{args.model}: {batch.size} sequences, {tokens} tokens ({trained} trained), threads {torch.get_num_threads()}")
    print("| variant | step s | scoring pass s | update s | tokens/s | trained tokens/s |\n| --- | --- | --- | --- | --- | --- |")
    for variant, m in table:
        print(f"| {variant} | {m['seconds']:.2f} | {m['score_seconds']:.2f} | {m['update_seconds']:.2f} "
              f"| {tokens / m['seconds']:.0f} | {trained / m['seconds']:.0f} |")
    if len(table) >= 2:
        print(f"\nspeed-up {table[0][0]} / {table[1][0]}: {table[0][1]['seconds'] / table[1][1]['seconds']:.2f}x")
    shutdown_distributed()


if __name__ == "__main__":
    main()

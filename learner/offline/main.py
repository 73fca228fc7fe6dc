"""Entry point of one offline-trainer rank (under torchrun; `outrider sft|dpo CONFIG` builds it):

    torchrun --standalone --nproc-per-node N -m outrider.learner.offline.main CONFIG [--max-steps N]

The config's kind (`sft` or `dpo`) picks the dataset reader and the objective.
"""

from __future__ import annotations

import argparse
import sys

from outrider.config import DPOConfig, SFTConfig
from outrider.learner.main import start_rank


def load_examples(cfg: SFTConfig | DPOConfig, tokenizer) -> list:
    """The dataset of `cfg`, tokenized (raises DataError naming file and line)."""
    from outrider.learner.offline import data
    from outrider.learner.offline.render import ChatRenderer

    source = cfg.data

    def renderer() -> ChatRenderer:
        return ChatRenderer(tokenizer)

    if isinstance(cfg, SFTConfig):
        readers = {
            "chat": lambda: data.chat_examples(source.path, renderer()),
            "trajectories": lambda: data.trajectory_examples(source.path, source.solved_only, source.min_reward),
            "eval_samples": lambda: data.eval_sample_examples(source.path),
        }
    else:
        readers = {
            "pairs": lambda: data.pair_examples(source.path, renderer()),
            "groups": lambda: data.group_pairs(source.path, source.min_reward_gap),
        }
    return readers[source.format]()


def _length(example) -> int:
    sides = (example.chosen, example.rejected) if hasattr(example, "chosen") else (example,)
    return max(len(s.token_ids) for s in sides)


def run(cfg: SFTConfig | DPOConfig, max_steps: int | None = None) -> int:
    from transformers import AutoTokenizer

    from outrider.learner.algorithms import Configured
    from outrider.learner.algos import PREFERENCE_LOSSES
    from outrider.learner.engine import frozen_module, shutdown_distributed
    from outrider.learner.models import load_reference, model_folder
    from outrider.learner.offline.data import DataError
    from outrider.learner.offline.objectives import DPOObjective, SFTObjective, reference_logprobs
    from outrider.learner.offline.trainer import start, train

    rank, _ = start(cfg)
    try:
        try:
            examples = load_examples(cfg, AutoTokenizer.from_pretrained(model_folder(cfg.model)))
        except DataError as exc:
            if rank == 0:  # every rank reads the same file and fails the same way
                print(f"error: data.path: {exc}", file=sys.stderr)
            return 2
        kept = [e for e in examples if _length(e) <= cfg.max_length]
        if rank == 0:
            print(f"{cfg.data.path}: {len(examples)} examples, {len(examples) - len(kept)} left out as longer "
                  f"than max_length {cfg.max_length}", flush=True)
        if not kept:
            if rank == 0:
                print(f"error: data.path: {cfg.data.path}: no examples to train on", file=sys.stderr)
            return 2
        if isinstance(cfg, SFTConfig):
            objective = SFTObjective()
        else:
            mean = cfg.sequence_logprob == "mean"
            reference = frozen_module(load_reference(cfg.reference_model or cfg.model), cfg.engine)
            scores = reference_logprobs(reference, kept, cfg.engine.micro_batch_tokens, mean)
            del reference  # computed once: the reference is not needed while training
            entry = PREFERENCE_LOSSES.get(cfg.loss.name)
            objective = DPOObjective(Configured(entry, entry.make_params(**cfg.loss.params)), scores, mean)
        train(cfg, kept, objective, max_steps)
        return 0
    finally:
        shutdown_distributed()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="outrider.learner.offline.main", description="Run one offline-trainer rank.")
    parser.add_argument("config", help="sft or dpo config (YAML)")
    parser.add_argument("--max-steps", type=int, help="override max_steps")
    args = parser.parse_args(argv)
    cfg = start_rank("offline", args.config, (SFTConfig, DPOConfig), "the offline trainer needs kind sft or dpo")
    if cfg is None:
        return 2
    return run(cfg, args.max_steps)


if __name__ == "__main__":
    sys.exit(main())

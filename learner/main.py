"""Entry point of one learner rank (run under torchrun or the deepspeed launcher).

    torchrun --nproc_per_node 2 -m outrider.learner.main RUN_CONFIG [--resume] [--max-steps N]

`outrider learn RUN_CONFIG` builds that command for you.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from outrider.config import ConfigError, LogConfig, RunConfig, load_config
from outrider.process import die_with_parent
from outrider.serving.logs import configure_logging


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="outrider.learner.main", description="Run one learner rank.")
    parser.add_argument("config", help="run config (YAML)")
    parser.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    parser.add_argument("--max-steps", type=int, help="override learner.max_steps")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A rank must not outlive its launcher: an orphaned rank would keep
    # training and committing groups beside a restarted learner.
    die_with_parent(signal.SIGKILL)
    rank = int(os.environ.get("RANK", "0"))
    configure_logging(LogConfig(level="info" if rank == 0 else "warning"), f"learner[{rank}]")
    for noisy in ("DeepSpeed", "deepspeed", "torch.distributed", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not isinstance(config, RunConfig):
        print(f"error: {args.config}: kind is {config.kind!r}; the learner needs a run config", file=sys.stderr)
        return 2
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    from outrider.learner.loop import Learner

    Learner(config, resume=args.resume, max_steps=args.max_steps).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

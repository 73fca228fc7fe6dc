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


def start_rank(role: str, config_path: str, kinds: tuple[type, ...], needs: str):
    """What every learner-type rank does first: die with its launcher, log as `role[rank]`,
    quiet the libraries, load the config. Returns it, or None after printing why it cannot
    be used (the caller exits with status 2)."""
    # A rank must not outlive its launcher: an orphaned rank would keep
    # training and committing groups beside a restarted learner.
    die_with_parent(signal.SIGKILL)
    rank = int(os.environ.get("RANK", "0"))
    configure_logging(LogConfig(level="info" if rank == 0 else "warning"), f"{role}[{rank}]")
    for noisy in ("DeepSpeed", "deepspeed", "torch.distributed", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    if not isinstance(config, kinds):
        print(f"error: {config_path}: kind is {config.kind!r}; {needs}", file=sys.stderr)
        return None
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    return config


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = start_rank("learner", args.config, (RunConfig,), "the learner needs a run config")
    if config is None:
        return 2
    from outrider.learner.loop import Learner

    Learner(config, resume=args.resume, max_steps=args.max_steps).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

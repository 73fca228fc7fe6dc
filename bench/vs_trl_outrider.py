"""The Outrider side of bench/vs_trl.py: the run config equivalent to the TRL settings, the run, its numbers.

The run is the real `outrider train CONFIG --overwrite --no-report` (the CLI,
as a user runs it), with bench/ on PYTHONPATH so the env service can import
the environment `vs_trl_env:SumEnv`. What it wrote is read back with
bench/train_breakdown.py (`read_jsonl`, `breakdown`), not re-derived here.

Equivalence with TRL's GRPOTrainer defaults (see docs/benchmarks.md):
  * advantage `grpo`: (r − mean_group) / (std_group + ε) with Bessel's
    correction, ε = 1e-4 as TRL's `scale_rewards="group"` (our default 1e-6);
  * policy loss `ppo_clip` with ε_low = ε_high = 0.2 (TRL's `epsilon`);
  * aggregation `token_mean`: TRL 1.16's default `loss_type="dapo"` divides
    the summed token losses of the whole generation batch by its number of
    completion tokens, which is what `token_mean` over one step does;
  * no KL (placement `none`, no reference model), no entropy bonus, one
    epoch, one mini-batch, dynamic sampling off;
  * AdamW, lr 1e-6, no warm-up, weight decay 0, gradient clipping at 1.0,
    fp32 (TRL decays lr linearly to 0 over max_steps; Outrider keeps it constant;
    that does not change the work per step).
Everything else (rollout workers, rollouts ahead of the learner within
`max_policy_lag`, checkpoint every step, weight sync by streaming) is
Outrider's default: the bench measures what a user gets.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from outrider.config import load_config

import train_breakdown
import vs_trl_env
import vs_trl_workload as workload

BENCH_DIR = Path(__file__).resolve().parent
RUN_NAME = "vs-trl-outrider"
TRL_STD_EPS = 1e-4
"""TRL adds 1e-4 to the group's reward std before dividing."""


def run_config(work: workload.Workload, total_steps: int, folder: Path, spec_path: Path) -> dict:
    """The `outrider train` config for `work`: `total_steps` learner steps, run folder under `folder`."""
    if work.dtype != "fp32":
        raise ValueError(f"dtype {work.dtype!r}: this bench compares fp32 only")
    return {
        "kind": "run",
        "name": RUN_NAME,
        "output_dir": str(folder),
        "seed": work.seed,
        # The reward comes from the environment; the reward service has nothing to do here.
        "stack": {"services": ["policy", "env", "curriculum"]},
        "env": {"builtin_envs": [], "spec_files": [str(spec_path)]},
        # TRL samples prompts uniformly (shuffled); Outrider's default would favour learnable ones.
        "curriculum": {"strategy": {"type": "uniform"}, "seed": work.seed},
        "policy": {"model": work.model, "backend": "auto", "dtype": "float32", "seed": work.seed, "http_port": None},
        "rollout": {
            "envs": [vs_trl_env.NAME],
            "group_size": work.group_size,
            "max_turns": 1,
            "sampling": {"temperature": work.temperature, "top_p": 1.0, "top_k": 0, "max_tokens": work.max_new_tokens},
        },
        "learner": {
            "model": work.model,
            "groups_per_step": work.prompts_per_step,
            "max_steps": total_steps,
            "engine": {"dtype": "fp32"},
            "optimizer": {"lr": work.lr, "warmup_steps": 0, "weight_decay": 0.0, "grad_clip": 1.0},
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"eps": TRL_STD_EPS}},
                "policy_loss": {"name": "ppo_clip", "params": {"clip_eps_low": 0.2, "clip_eps_high": 0.2}},
                "aggregation": {"name": "token_mean"},
                "kl": _kl(work.beta),
                "entropy_coef": 0.0,
                "epochs": 1,
                "mini_batches": 1,
                "dynamic_sampling": False,
            },
        },
        "evaluation": {"enabled": False},
    }


def _kl(beta: float) -> dict:
    """β = 0: no KL term and no reference model; else TRL's k3 estimator in the loss with a fixed β."""
    if beta == 0:
        return {"placement": "none"}
    return {"placement": "loss", "estimator": {"name": "k3"}, "controller": {"name": "fixed", "params": {"kl_coef": beta}}}


def write_run_files(work: workload.Workload, total_steps: int, folder: Path) -> Path:
    """Write the env spec and the run config into `folder` (checked by Outrider's own loader); return the config."""
    folder = folder.resolve()  # the services resolve relative paths against their own working directory
    folder.mkdir(parents=True, exist_ok=True)
    spec_path = folder / "vs-trl-sum.yaml"
    spec_path.write_text(yaml.safe_dump(vs_trl_env.env_spec(work), sort_keys=False))
    config_path = folder / "run.yaml"
    config_path.write_text(yaml.safe_dump(run_config(work, total_steps, folder, spec_path), sort_keys=False))
    load_config(config_path)  # a config error fails here, with its field path, before anything starts
    return config_path


def outrider_command() -> list[str]:
    script = Path(sys.executable).parent / "outrider"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "outrider.cli.main"]


def bench_env() -> dict:
    """The environment of an `outrider` command a bench runs: bench/ on PYTHONPATH, so the
    env service can import the environment `vs_trl_env:SumEnv`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BENCH_DIR), env.get("PYTHONPATH", "")) if p)
    return env


def train(config_path: Path) -> float:
    """Run `outrider train` on the config (output streams to the terminal); return its wall seconds."""
    env = bench_env()
    command = [*outrider_command(), "train", str(config_path), "--overwrite", "--no-report"]
    print(f"[outrider] {' '.join(command)}", flush=True)
    started = time.monotonic()
    done = subprocess.run(command, env=env)
    if done.returncode != 0:
        raise RuntimeError(
            f"`outrider train` exited with status {done.returncode}; its services' and learner's logs are in "
            f"{config_path.parent / RUN_NAME / 'logs'}"
        )
    return time.monotonic() - started


def mean_prompt_tokens(work: workload.Workload, model_path: Path) -> float:
    """Mean prompt length of the prompt set, rendered by the policy service's own renderer.

    Outrider's metrics count completion tokens only; the prompt part of the
    trained tokens is this mean times the trajectories (the curriculum draws
    prompts uniformly from this set).
    """
    from outrider.services.policy.prompts import Message, PromptRenderer

    renderer = PromptRenderer(model_path)
    lengths = [len(renderer.render_chat([Message("user", p.prompt)], True, "")[0]) for p in work.problems()]
    return statistics.fmean(lengths)


def analyse(run_dir: Path, warmup: int, workers: int, groups_per_step: int, prompt_tokens: float) -> dict:
    """Steady-state numbers of a finished run: per-step wall times after `warmup` steps, and the split.

    Step k's wall time is the time between the learner finishing step k − 1
    and step k (metrics.jsonl `time`), so the first step, which includes
    start-up, has none and is always a warm-up step.
    """
    steps = train_breakdown.read_jsonl(run_dir / "metrics.jsonl")
    warmup = max(warmup, 1)
    if len(steps) <= warmup:
        raise RuntimeError(f"{run_dir}: {len(steps)} learner steps, none after the {warmup} warm-up step(s)")
    steady = steps[warmup:]
    walls = [b["time"] - a["time"] for a, b in zip(steps[warmup - 1:], steady)]
    samples = [s["trajectories"] for s in steady]
    completion = [s["trajectories"] * s["response_tokens_mean"] for s in steady]
    numbers = {
        "step_s": walls,
        "samples_per_step": statistics.fmean(samples),
        "completion_tokens_per_step": statistics.fmean(completion),
        "trained_tokens_per_step": statistics.fmean(c + n * prompt_tokens for c, n in zip(completion, samples)),
        "prompt_tokens_mean": prompt_tokens,
        "trained_tokens_note": "completion tokens from metrics.jsonl + trajectories x the prompt set's mean templated length",
        "split": None,
        "breakdown": None,
    }
    if len(steps) >= 3:  # train_breakdown needs a first step plus two to call anything steady
        split = train_breakdown.breakdown(run_dir, workers)
        numbers["breakdown"] = split
        # `breakdown` spreads the worker-seconds of every finished group over the learner steps; the
        # dispatcher keeps up to groups_per_step x max_policy_lag groups ahead, so a short run finishes
        # more groups than it trains. Per trained step: the mean group's seconds x groups per step.
        # Rollouts run in `workers` processes beside the learner: worker-seconds / workers is their
        # wall-clock share of a step, overlapped with the learner's update, sync and wait.
        per_step = groups_per_step / split["groups_per_step"] / workers
        numbers["split"] = {
            "generation_s": split["generate_worker_s"] * per_step,
            "reward_s": (split["env_worker_s"] + split["reward_worker_s"]) * per_step,
            "update_s": split["learner_compute_s"],
            "sync_s": split["sync_s"],
            "wait_s": split["learner_wait_s"],
        }
    return numbers


def run(work: workload.Workload, steps: int, warmup: int, folder: Path, model_path: Path) -> dict:
    """Train `warmup + steps` learner steps with `outrider train`; return the run's numbers."""
    config_path = write_run_files(work, warmup + steps, folder)
    workers = load_config(config_path).rollout.workers
    total = train(config_path)
    numbers = analyse(folder / RUN_NAME, warmup, workers, work.prompts_per_step, mean_prompt_tokens(work, model_path))
    numbers |= {"system": "outrider", "total_s": total, "workers": workers, "run_dir": str(folder / RUN_NAME),
                "config": str(config_path)}
    return numbers

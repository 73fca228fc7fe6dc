"""The TRL side of bench/vs_trl.py: TRL 1.16's GRPOTrainer on the shared workload, timed per step.

    <trl-venv>/bin/python bench/vs_trl_trl.py --workload JSON --model-path DIR --steps N --warmup W --out FILE
    <trl-venv>/bin/python bench/vs_trl_trl.py --workload JSON --model-path DIR --budget-s S --clock-start T --save-dir D --out FILE

Runs in TRL's own venv (bench/vs_trl_venv.py), so nothing of Outrider is
imported. Everything the two systems must share comes from
bench/vs_trl_workload.py: `dataset_rows` and `sum_correct` are the TRL
side's data and reward, kept free of trl/torch imports so that the test in
the project's venv can check them against the Outrider environment.

TRL settings: its defaults, except the workload (G, prompts per step, max
new tokens, temperature, lr, β, fp32) and the run's bookkeeping (CPU,
max_steps, no reporting, seed). 8 prompts x 8 generations per optimizer step
are `per_device_train_batch_size` 8 (TRL's default) x
`gradient_accumulation_steps` 8: TRL then generates the step's 64
completions in one batch (`steps_per_generation` defaults to the
accumulation steps) and accumulates 8 micro-batches into one optimizer step.

Timing (TRL exposes no step breakdown of its own): `StepTimer` wraps the
trainer's `_generate` (sampling + decoding), `_calculate_rewards`,
`_generate_and_score_completions` and `training_step`, and is a
TrainerCallback whose `on_step_end` closes each optimizer step. Per step:
  generation = time in `_generate`;
  reward     = time in `_calculate_rewards`;
  update     = time in `training_step` minus the generate-and-score call made
               inside it (forward + backward of the micro-batches), plus the
               time from the last micro-batch to `on_step_end` (gradient
               clipping, optimizer, scheduler);
  other      = the rest of the step's wall time (tokenizing, padding,
               advantages, data loading, logging).
There is no weight sync (one model generates and trains) and no waiting
(generation and training alternate).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import vs_trl_workload as workload  # noqa: E402

TRL_MICRO_BATCH = 8
"""TrainingArguments' default `per_device_train_batch_size`, kept: the step's samples are accumulated over micro-batches of it."""


def dataset_rows(work: workload.Workload) -> list[dict]:
    """The TRL dataset: one conversational prompt (one user message) and its answer per problem."""
    return [{"prompt": [{"role": "user", "content": p.prompt}], "answer": p.answer} for p in work.problems()]


def completion_text(completion) -> str:
    """A TRL completion's text: conversational ([{"role": "assistant", "content": ...}]) or plain."""
    if isinstance(completion, list):
        return "".join(message["content"] for message in completion if message.get("role") == "assistant")
    return completion


def sum_correct(prompts, completions, answer, **_) -> list[float]:
    """The GRPOTrainer reward function (TRL names its metric after it): `answer` is the dataset
    column of each completion's prompt, the reward is `vs_trl_workload.reward`."""
    return [workload.reward(completion_text(c), int(a)) for c, a in zip(completions, answer, strict=True)]


class StepTimer:
    """Per-optimizer-step wall time and its split; see the module docstring for the definitions."""

    def __init__(self) -> None:
        self.steps: list[dict] = []
        self._reset()
        self._step_started = time.perf_counter()
        self._last_micro_end: float | None = None

    def _reset(self) -> None:
        self.current = {"generation_s": 0.0, "reward_s": 0.0, "score_s": 0.0, "micro_s": 0.0,
                        "samples": 0, "completion_tokens": 0, "prompt_tokens": 0}

    def wrap(self, trainer) -> None:
        generate, rewards = trainer._generate, trainer._calculate_rewards
        score, micro = trainer._generate_and_score_completions, trainer.training_step

        def timed(key, fn):
            def call(*args, **kwargs):
                started = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    self.current[key] += time.perf_counter() - started
            return call

        def scored(*args, **kwargs):
            started = time.perf_counter()
            out = score(*args, **kwargs)
            self.current["score_s"] += time.perf_counter() - started
            self.current["samples"] += int(out["completion_ids"].shape[0])
            self.current["completion_tokens"] += int(out["completion_mask"].sum())
            self.current["prompt_tokens"] += int(out["prompt_mask"].sum())
            return out

        def micro_step(*args, **kwargs):
            started = time.perf_counter()
            try:
                return micro(*args, **kwargs)
            finally:
                self._last_micro_end = time.perf_counter()
                self.current["micro_s"] += self._last_micro_end - started

        trainer._generate = timed("generation_s", generate)
        trainer._calculate_rewards = timed("reward_s", rewards)
        trainer._generate_and_score_completions = scored
        trainer.training_step = micro_step

    def callback(self):
        from transformers import TrainerCallback

        timer = self

        class _Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                timer._step_started = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                timer.close_step(state.global_step)

        return _Callback()

    def close_step(self, step: int) -> None:
        now = time.perf_counter()
        c = self.current
        wall = now - self._step_started
        tail = now - self._last_micro_end if self._last_micro_end is not None else 0.0
        update = c["micro_s"] - c["score_s"] + tail
        record = {
            "step": step,
            "wall_s": wall,
            "generation_s": c["generation_s"],
            "reward_s": c["reward_s"],
            "update_s": update,
            "sync_s": 0.0,
            "wait_s": 0.0,
            "other_s": wall - c["generation_s"] - c["reward_s"] - update,
            "samples": c["samples"],
            "completion_tokens": c["completion_tokens"],
            "prompt_tokens": c["prompt_tokens"],
        }
        self.steps.append(record)
        print(f"[trl] step {step}: {wall:.1f} s (generation {c['generation_s']:.1f}, reward {c['reward_s']:.2f}, "
              f"update {update:.1f}); {c['samples']} samples, {c['completion_tokens']} completion tokens", flush=True)
        self._reset()
        self._step_started = now


def grpo_settings(work: workload.Workload, max_steps: int, output_dir: str) -> dict:
    """The GRPOConfig arguments this bench sets; everything else is TRL's default."""
    if work.dtype != "fp32":
        raise ValueError(f"dtype {work.dtype!r}: this bench compares fp32 only")
    return {
        "output_dir": output_dir,
        "use_cpu": True,
        "bf16": False,  # TRL defaults to bf16 mixed precision; the workload is fp32
        "model_init_kwargs": {"dtype": "float32"},
        "num_generations": work.group_size,
        "gradient_accumulation_steps": work.samples_per_step // TRL_MICRO_BATCH,
        "per_device_train_batch_size": TRL_MICRO_BATCH,
        "max_completion_length": work.max_new_tokens,
        "temperature": work.temperature,
        "learning_rate": work.lr,
        "beta": work.beta,
        "num_iterations": 1,
        "max_steps": max_steps,
        "seed": work.seed,
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 1,
    }


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("trl", "transformers", "torch", "accelerate", "datasets"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def make_trainer(work: workload.Workload, model_path: str, settings: dict):
    """GRPOTrainer on the workload's dataset and reward with these GRPOConfig arguments."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    if work.samples_per_step % TRL_MICRO_BATCH:
        raise ValueError(f"{work.samples_per_step} samples per step: must be a multiple of TRL's micro-batch of {TRL_MICRO_BATCH}")
    config = GRPOConfig(**settings)
    trainer = GRPOTrainer(
        model=model_path,
        reward_funcs=[sum_correct],
        args=config,
        train_dataset=Dataset.from_list(dataset_rows(work)),
    )
    return trainer, config


class BudgetCallback:
    """bench/time_to_quality.py: after every optimizer step, save the model as an HF folder
    (save_dir/step-N, weights only; the time spent saving is taken off the clock) and
    stop once the clock, which started at the bench's launch of this process
    (`clock_start`, epoch seconds), has passed `budget_s`."""

    def __init__(self, save_dir: Path, budget_s: float, clock_start: float) -> None:
        self.save_dir, self.budget_s, self.clock_start = save_dir, budget_s, clock_start
        self.paused_s = 0.0
        self.checkpoints: list[dict] = []

    def elapsed(self) -> float:
        return time.time() - self.clock_start - self.paused_s

    def callback(self, trainer):
        from transformers import TrainerCallback

        budget = self

        class _Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                budget.train_began_s = budget.elapsed()

            def on_step_end(self, args, state, control, **kwargs):
                elapsed = budget.elapsed()
                started = time.time()
                folder = budget.save_dir / f"step-{state.global_step}"
                trainer.model.save_pretrained(folder, safe_serialization=True)
                budget.paused_s += time.time() - started
                budget.checkpoints.append({"step": state.global_step, "elapsed_s": elapsed, "path": str(folder)})
                print(f"[trl] step {state.global_step} done at {elapsed / 60:.2f} min (saved to {folder})", flush=True)
                if elapsed >= budget.budget_s:
                    control.should_training_stop = True

        return _Callback()


def run_budget(work: workload.Workload, model_path: str, budget_s: float, clock_start: float, save_dir: Path,
               out: Path) -> dict:
    """Train until the first step end past `budget_s` on the clock (BudgetCallback); lr constant
    (as Outrider's), the rest as `grpo_settings`. Writes and returns the checkpoints with their times."""
    settings = grpo_settings(work, 100_000, str(out.parent / "trl-output")) | {"lr_scheduler_type": "constant"}
    trainer, config = make_trainer(work, model_path, settings)
    budget = BudgetCallback(save_dir, budget_s, clock_start)
    trainer.add_callback(budget.callback(trainer))
    print(f"[trl] training for {budget_s / 60:.1f} min of wall clock (started {budget.elapsed():.1f} s ago)", flush=True)
    trainer.train()
    result = {
        "system": "trl",
        "budget_s": budget_s,
        "train_began_s": budget.train_began_s,
        "checkpoints": budget.checkpoints,
        "save_paused_s": budget.paused_s,
        "versions": versions(),
        "settings": {k: v for k, v in settings.items() if k != "output_dir"},
        "effective": {"loss_type": config.loss_type, "scale_rewards": config.scale_rewards,
                      "gradient_checkpointing": config.gradient_checkpointing},
    }
    out.write_text(json.dumps(result, indent=2))
    return result


def run(work: workload.Workload, model_path: str, steps: int, warmup: int, out: Path) -> dict:
    """Train `warmup + steps` optimizer steps with GRPOTrainer; write and return the per-step records."""
    import torch

    settings = grpo_settings(work, warmup + steps, str(out.parent / "trl-output"))
    trainer, config = make_trainer(work, model_path, settings)
    timer = StepTimer()
    timer.wrap(trainer)
    trainer.add_callback(timer.callback())
    print(f"[trl] training {warmup + steps} steps ({warmup} warm-up) of {work.samples_per_step} samples, "
          f"torch threads {torch.get_num_threads()}", flush=True)
    started = time.monotonic()
    trainer.train()
    result = {
        "system": "trl",
        "steps": timer.steps,
        "warmup": warmup,
        "total_s": time.monotonic() - started,
        "versions": versions(),
        "settings": {k: v for k, v in settings.items() if k != "output_dir"},
        "effective": {
            "loss_type": config.loss_type,
            "scale_rewards": config.scale_rewards,
            "epsilon": config.epsilon,
            "gradient_checkpointing": config.gradient_checkpointing,
            "steps_per_generation": config.steps_per_generation,
            "generation_batch_size": config.generation_batch_size,
            "lr_scheduler_type": str(config.lr_scheduler_type),
            "max_grad_norm": config.max_grad_norm,
            "weight_decay": config.weight_decay,
            "torch_threads": torch.get_num_threads(),
        },
        "python": platform.python_version(),
    }
    out.write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", required=True, help="Workload.to_dict() as JSON")
    parser.add_argument("--model-path", required=True, help="HF model folder (Outrider's materialized built-in)")
    parser.add_argument("--steps", type=int, help="vs_trl.py: measured steps")
    parser.add_argument("--warmup", type=int, help="vs_trl.py: warm-up steps")
    parser.add_argument("--budget-s", type=float, help="time_to_quality.py: train for this much wall clock")
    parser.add_argument("--clock-start", type=float, help="time_to_quality.py: epoch seconds the clock started")
    parser.add_argument("--save-dir", type=Path, help="time_to_quality.py: folder of the per-step HF checkpoints")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(name, "1")
    work = workload.Workload.from_dict(json.loads(args.workload))
    if args.budget_s is not None:
        if args.clock_start is None or args.save_dir is None:
            parser.error("--budget-s needs --clock-start and --save-dir")
        run_budget(work, args.model_path, args.budget_s, args.clock_start, args.save_dir, args.out)
    elif args.steps is None or args.warmup is None:
        parser.error("give --steps and --warmup (vs_trl.py), or --budget-s (time_to_quality.py)")
    else:
        run(work, args.model_path, args.steps, args.warmup, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Configs of the offline trainers: `outrider sft` (kind: sft) and `outrider dpo` (kind: dpo).

Both train the same DeepSpeed actor as the RL learner (same engine and optimizer
sections) on a fixed dataset instead of the trajectory bus; they share every field but
the data source and the DPO loss. A run folder `<output_dir>/<name>` receives
metrics.jsonl, checkpoints/ and the HF export final/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from outrider.config.algorithm_catalog import check_params, names, requires
from outrider.config.base import ConfigModel
from outrider.config.common import Tracker, WandbConfig
from outrider.config.learner import Algorithm, EngineConfig, OptimizerConfig


class OfflineTrainConfig(ConfigModel):
    """What SFT and DPO share: the model, the DeepSpeed engine, the step loop, the run folder."""

    name: str = Field("offline", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    """Run name; names the run folder."""
    output_dir: str = "runs"
    """Parent folder of run folders (`<output_dir>/<name>`): metrics, checkpoints, HF export."""
    seed: int = Field(0, ge=0)
    """Seed of the data order and of every random number generator."""
    model: str = "smollm2-135m-instruct"
    """Initial weights: a built-in model name (`smollm2-135m-instruct`, `tiny-random`) or an HF folder."""
    ranks: int = Field(1, ge=1, le=64)
    """Data-parallel processes (GPUs; CPU processes on a CPU machine)."""
    engine: EngineConfig = EngineConfig()
    """DeepSpeed engine of the actor (ZeRO stage, precision, micro-batch token budget)."""
    optimizer: OptimizerConfig = OptimizerConfig(lr=1e-5)
    """The actor's optimizer."""
    batch_size: int = Field(8, ge=1)
    """Examples (SFT: conversations; DPO: pairs) per optimizer step, over all ranks."""
    epochs: int = Field(1, ge=1, le=1000)
    """Passes over the dataset (reshuffled each pass with `seed`)."""
    max_steps: int = Field(0, ge=0)
    """Stop after this many optimizer steps (0: when the epochs are done)."""
    max_length: int = Field(2048, ge=8)
    """Longest tokenized example (DPO: prompt + the longer response); longer ones are
    left out and counted (cutting them would train on answers without their ending)."""
    checkpoint_every: int = Field(0, ge=0)
    """Also save a DeepSpeed checkpoint every this many steps (0: only at the end)."""
    keep_checkpoints: int = Field(1, ge=1)
    """Checkpoints kept on disk (older ones are deleted)."""
    report_to: list[Tracker] = Field(default_factory=list)
    """Experiment trackers that get every step's metrics besides metrics.jsonl:
    `tensorboard` (event files in `<run_dir>/tensorboard/`), `wandb` (see `wandb`)."""
    wandb: WandbConfig = WandbConfig()
    """The W&B run, when `report_to` names `wandb`."""

    @property
    def run_dir(self) -> Path:
        """Folder of this run: metrics, checkpoints, HF export."""
        return Path(self.output_dir) / self.name


class SFTDataConfig(ConfigModel):
    format: Literal["chat", "trajectories", "eval_samples"] = "chat"
    """`chat`: JSONL, one {"messages": [{"role", "content"}, ...]} per line, rendered with the
    model's chat template, loss on assistant messages. `trajectories`: JSONL, one
    TrajectoryGroup (protobuf JSON) per line, token ids as sampled, loss on completion
    tokens (rejection-sampling fine-tuning; filtered by `solved_only`/`min_reward`).
    `eval_samples`: an `outrider eval` folder's samples/*.jsonl (or one such file): the
    correct episodes it keeps per task."""
    path: str = ""
    """The JSONL file (or, for `eval_samples`, the eval folder or one samples file)."""
    solved_only: bool = True
    """`trajectories`: keep only episodes the environment judged solved."""
    min_reward: float | None = None
    """`trajectories`: keep only episodes with outcome reward ≥ this (null: any)."""


class SFTConfig(OfflineTrainConfig):
    kind: Literal["sft"] = "sft"
    """Config kind marker: supervised fine-tuning (`outrider sft`)."""
    data: SFTDataConfig = SFTDataConfig()
    """The dataset; the loss is the mean negative log-likelihood of the trained tokens."""


class DPODataConfig(ConfigModel):
    format: Literal["pairs", "groups"] = "pairs"
    """`pairs`: JSONL, one {"prompt": messages, "chosen": messages or text, "rejected": ...}
    per line, rendered with the chat template. `groups`: JSONL, one TrajectoryGroup
    (protobuf JSON) per line; each group gives one pair, its highest-reward episode
    against its lowest, token ids as sampled."""
    path: str = ""
    """The JSONL file."""
    min_reward_gap: float = Field(0.0, ge=0.0)
    """`groups`: a group gives a pair only if best − worst reward exceeds this (ties never do)."""


def _preference_policy_losses() -> list[str]:
    """Preference losses that train a policy against a reference (not reward-model losses)."""
    return [name for name in names("preference_loss") if "ref_chosen" in requires("preference_loss", name)]


class DPOConfig(OfflineTrainConfig):
    kind: Literal["dpo"] = "dpo"
    """Config kind marker: direct preference optimization (`outrider dpo`)."""
    data: DPODataConfig = DPODataConfig()
    """The preference pairs."""
    loss: Algorithm = Algorithm(name="dpo", params={"beta": 0.1})
    """Preference loss by registered name (`dpo`, `ipo`) and its parameters (docs/algorithms.md)."""
    reference_model: str | None = None
    """Frozen reference π_ref; null: the initial weights of `model`. Its log-probabilities
    are computed once, before the first step."""
    sequence_logprob: Literal["sum", "mean"] = "sum"
    """log π(y|x) of a response: the sum over its tokens (the DPO/IPO papers) or their mean
    (length-normalised, as SimPO-style variants use)."""

    @field_validator("loss")
    @classmethod
    def _policy_loss(cls, value: Algorithm) -> Algorithm:
        valid = _preference_policy_losses()
        if value.name not in valid:
            raise ValueError(f"unknown preference loss for a policy {value.name!r}; valid: {', '.join(valid)}")
        check_params("preference_loss", value.name, value.params)
        return value

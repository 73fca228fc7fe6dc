"""Config of the learner: DeepSpeed engine, models, algorithm, checkpoints, weight sync.

Algorithm names and their parameters are checked against the catalog of the
learner's registries (`algorithms.json`) at load time, without importing torch.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from outrider.config.algorithm_catalog import check_params, names, requires
from outrider.config.base import ConfigModel
from outrider.config.common import Tracker, WandbConfig


class Algorithm(ConfigModel):
    """A registered algorithm and its hyper-parameters (see docs/algorithms.md)."""

    name: str
    """Registered name, e.g. `grpo`, `ppo_clip`, `token_mean`."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Hyper-parameters of that algorithm; unset ones keep their documented defaults."""


def _checked(kind: str, value: Algorithm) -> Algorithm:
    check_params(kind, value.name, value.params)
    return value


class KLConfig(ConfigModel):
    estimator: Algorithm = Algorithm(name="k3")
    """KL estimator (`k1`, `k2`, `k3`, `k3_is`) between the policy and the reference model."""
    placement: Literal["none", "reward", "loss"] = "none"
    """`reward`: subtract coef·KL from per-token rewards; `loss`: add coef·KL to the loss;
    `none`: no KL (the reference model is then not needed)."""
    controller: Algorithm = Algorithm(name="fixed", params={"kl_coef": 0.001})
    """How the KL coefficient evolves: `fixed`, or `adaptive` (Ziegler et al.) toward a target KL."""
    disagreement_gain: float = Field(0.0, ge=0.0, le=100.0)
    """Heuristic against reward hacking (docs/reward.md): with a PRM ensemble, a step's KL
    coefficient is the controller's times 1 + gain·max(0, d/d₀ − 1), d the step's mean
    `prm_disagreement` and d₀ the first one measured (checkpointed). 0: off."""

    @field_validator("estimator", "controller")
    @classmethod
    def _registered(cls, value: Algorithm, info: ValidationInfo) -> Algorithm:
        return _checked("kl_estimator" if info.field_name == "estimator" else "kl_controller", value)

    @model_validator(mode="after")
    def _gain_needs_kl(self) -> KLConfig:
        if self.disagreement_gain > 0 and self.placement == "none":
            raise ValueError("disagreement_gain scales the KL coefficient: set placement to `reward` or `loss`")
        return self


class DistillationConfig(ConfigModel):
    """On-policy distillation: a frozen teacher scores the student's own sampled tokens and
    the per-token reverse KL d_t = log π_θ(y_t) − log π_T(y_t) trains the student
    (docs/algorithms.md, "On-policy distillation")."""

    teacher: str | None = None
    """Teacher model (frozen; a built-in name or an HF folder with the actor's vocabulary),
    loaded by the learner and run in the scoring pass; null: no distillation."""
    placement: Literal["advantage", "loss"] = "advantage"
    """`advantage`: A_t = rl_coef·A_t + coef·(log π_T(y_t) − log π_old(y_t)), discount 0
    (needs the scoring pass for π_old); `loss`: per-token loss = rl_coef·policy loss +
    coef·estimator(log π_θ, log π_T)."""
    coef: float = Field(1.0, gt=0.0, le=100.0)
    """Weight of the distillation term."""
    rl_coef: float = Field(1.0, ge=0.0, le=100.0)
    """Weight of the reward-driven part (the estimator's advantages, or the policy loss);
    0: distillation alone. KL-to-reference and the entropy bonus are not scaled."""
    estimator: Algorithm = Algorithm(name="k3_is")
    """KL estimator of the `loss` placement: `k3_is` or `k2` (gradient of the reverse KL),
    `k3` (of the forward KL); `k1` is refused (its expected gradient is 0)."""

    @field_validator("estimator")
    @classmethod
    def _registered(cls, value: Algorithm) -> Algorithm:
        return _checked("kl_estimator", value)

    @model_validator(mode="after")
    def _consistent(self) -> DistillationConfig:
        if self.teacher is None and self.rl_coef != 1.0:
            raise ValueError("rl_coef scales the RL term against distillation: set teacher, or leave rl_coef at 1")
        if self.placement == "loss" and self.estimator.name == "k1":
            raise ValueError("estimator k1 has expected gradient 0 as a loss: use k3_is, k2 or k3")
        return self


# Config field -> registry kind of the algorithms it names.
_KINDS = {
    "advantage": "advantage",
    "policy_loss": "policy_loss",
    "aggregation": "aggregation",
    "transforms": "loss_transform",
    "reward_shaping": "reward_shaping",
}


class ConstraintsConfig(ConfigModel):
    """Lagrange multipliers of the reward service's constraint components (docs/reward.md):
    R = r_main − Σ_c λ_c·max(0, g_c); each step λ_c ← clip(λ_c + lr·mean g_c, 0, max_multiplier),
    g_c the violation measured on the step's trajectories. λ is checkpointed learner state."""

    lr: float = Field(0.05, gt=0.0, le=100.0)
    """η: step size of the dual ascent on λ."""
    initial: float = Field(0.0, ge=0.0, le=1e4)
    """λ of a constraint the learner has not seen before."""
    max_multiplier: float = Field(100.0, gt=0.0, le=1e6)
    """λ is kept at most this (a bound on the penalty while a constraint cannot yet be met)."""


class AlgorithmConfig(ConfigModel):
    advantage: Algorithm = Algorithm(name="grpo")
    """Advantage estimator (`grpo`, `dr_grpo`, `rloo`, `gae`, `reinforce_pp`, `opo`, ...)."""
    policy_loss: Algorithm = Algorithm(name="ppo_clip")
    """Policy loss (`ppo_clip`, `dual_clip`, `clip_higher`, `gspo`, `cispo`, `clip_cov`, `kl_cov`, `pg`,
    `ppo_kl`: an adaptive KL penalty to π_old whose coefficient is checkpointed learner state)."""
    transforms: list[Algorithm] = Field(default_factory=list)
    """Loss transforms applied in order before the loss (`tis_token`, `entropy_advantage`,
    `forking_tokens`, `psr_only`, `offpolicy_sequence_mask`, ...)."""
    reward_shaping: list[Algorithm] = Field(default_factory=list)
    """Outcome-reward shapings applied in order before the advantages (`kimi_length`,
    `long2short`); the trajectories' recorded rewards are left as they are."""
    min_valid: int = Field(2, ge=1)
    """Episodes that ended in an infrastructure failure (Trajectory.infra_failure) leave their
    group's statistics and the loss; a group that lost some and keeps fewer valid episodes
    than this is dropped (counted). Groups without failures are kept whatever their size."""
    aggregation: Algorithm = Algorithm(name="token_mean")
    """How per-token losses become one number (`token_mean`, `seq_mean_token_mean`, ...)."""
    kl: KLConfig = KLConfig()
    """KL regularisation toward the reference model."""
    entropy_coef: float = Field(0.0, ge=0.0, le=1.0)
    """Entropy bonus: the loss subtracts entropy_coef · mean token entropy."""
    epochs: int = Field(1, ge=1, le=16)
    """Passes over each step's data."""
    mini_batches: int = Field(1, ge=1, le=64)
    """Optimizer steps per pass (the step's sequences split into this many mini-batches)."""
    scoring_pass: Literal["auto", "always"] = "auto"
    """π_old before the update: `auto` skips the separate scoring pass where it is exact
    (one epoch, one mini-batch, no KL penalty in the reward: π_old = π_θ, taken from the
    update's own forward); `always` runs it anyway (one more forward over the batch)."""
    dynamic_sampling: bool = False
    """Drop groups whose rewards are all equal (they carry no group-relative signal)."""
    value_clip: float | None = Field(0.2, gt=0.0)
    """Critic: clip the value update to ±value_clip around the old value (null: no clipping)."""
    distillation: DistillationConfig = DistillationConfig()
    """On-policy distillation to a teacher model, alone or added to the RL objective."""
    constraints: ConstraintsConfig = ConstraintsConfig()
    """Dual ascent of the Lagrange multipliers of constrained reward components (used when
    trajectories carry constraint components, i.e. the reward service has constraints)."""

    @field_validator("advantage", "policy_loss", "aggregation", "transforms", "reward_shaping")
    @classmethod
    def _registered(cls, value: Algorithm | list[Algorithm], info: ValidationInfo) -> Algorithm | list[Algorithm]:
        kind = _KINDS[info.field_name]
        if isinstance(value, list):
            return [_checked(kind, item) for item in value]
        return _checked(kind, value)

    def needs(self) -> set[str]:
        """Optional inputs the configured algorithms cannot run without (e.g. `values`)."""
        needed = set(requires("advantage", self.advantage.name)) | set(requires("policy_loss", self.policy_loss.name))
        for transform in self.transforms:
            needed |= set(requires("loss_transform", transform.name))
        return needed


class OptimizerConfig(ConfigModel):
    lr: float = Field(1e-6, gt=0.0, le=1.0)
    """Peak learning rate (AdamW)."""
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    """Decoupled weight decay."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    eps: float = Field(1e-8, gt=0.0)
    """AdamW epsilon."""
    grad_clip: float | None = Field(1.0, gt=0.0)
    """Clip the global gradient norm to this value (null: no clipping)."""
    warmup_steps: int = Field(0, ge=0)
    """Linear warm-up from 0 to `lr` over this many optimizer steps."""

    @field_validator("betas")
    @classmethod
    def _betas(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= beta < 1.0 for beta in value):
            raise ValueError(f"betas must lie in [0, 1), got {value}")
        return value


class EngineConfig(ConfigModel):
    zero_stage: Literal[0, 1, 2, 3] = 0
    """DeepSpeed ZeRO stage: 0 replicates everything, 1 shards optimizer state,
    2 also gradients, 3 also parameters."""
    offload_optimizer: bool = False
    """Keep optimizer state in CPU memory (ZeRO-Offload; stage >= 1; builds DeepSpeedCPUAdam once)."""
    offload_params: bool = False
    """Keep parameters in CPU memory between uses (stage 3 only)."""
    dtype: Literal["fp32", "bf16"] = "fp32"
    """Training precision; bf16 keeps fp32 master weights in the optimizer."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward: less memory, ~30% more compute."""
    micro_batch_tokens: int = Field(4096, ge=16)
    """Token budget of one forward/backward pass (padded sequences × length);
    the step's sequences are packed into as many passes as needed."""
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    """torch.distributed backend; auto: nccl with CUDA, gloo on CPU."""

    @model_validator(mode="after")
    def _offload_rules(self) -> EngineConfig:
        if self.offload_params and self.zero_stage != 3:
            raise ValueError("offload_params needs zero_stage 3")
        if self.offload_optimizer and self.zero_stage == 0:
            raise ValueError("offload_optimizer needs zero_stage >= 1")
        return self


class ReferenceConfig(ConfigModel):
    model: str | None = None
    """Reference model (frozen); null: the actor's initial weights."""


class CriticConfig(ConfigModel):
    enabled: bool = False
    """Train a value critic (needed by `gae`)."""
    model: str | None = None
    """Backbone of the critic; null: the actor's model. A scalar head is added."""
    optimizer: OptimizerConfig = OptimizerConfig(lr=1e-5)
    """The critic's own optimizer."""


class WeightSyncConfig(ConfigModel):
    every: int = Field(1, ge=1)
    """Publish weights to the policy service every this many learner steps."""
    mode: Literal["auto", "shm", "stream", "path", "none"] = "auto"
    """`auto`: `shm` when the policy's address is loopback or a unix socket (same host),
    else `stream`; falls back to `stream` for good if the policy cannot open the staged
    file (e.g. another container). `shm`: write one safetensors file in the served dtype
    to the policy's staging root (/dev/shm, else the cache dir) and send only its path;
    same host only, exactly the weights `stream` serves. `stream`: tensors over gRPC (any
    host). `path`: export an HF folder (shared storage) and send its path. `none`: no
    sync (offline training)."""
    address: str | None = None
    """Policy service `host:port`; null: the run's policy service."""
    timeout_s: float = Field(600.0, gt=0)
    """Deadline of one UpdateWeights call (and of the GetInfo calls around it), seconds. On
    the policy, the update pauses new calls, waits for those in flight, swaps and resumes;
    a deadline that passes before the swap leaves the old weights serving, their version
    unchanged."""
    max_failures: int = Field(3, ge=1, le=1000)
    """Weight syncs that may fail in a row (deadline, policy unavailable) before the learner
    stops with the error; until then a failed sync is logged (`sync/failures`) and the next
    one publishes the newer weights. The policy keeps serving the previous version meanwhile."""


class LearnerConfig(ConfigModel):
    model: str = "smollm2-135m-instruct"
    """Initial actor weights (the policy service's model): a built-in model name (`smollm2-135m-instruct`, `tiny-random`) or an HF folder."""
    ranks: int = Field(1, ge=1, le=64)
    """Data-parallel processes per node (GPUs per node; CPU processes on a CPU machine)."""
    seed: int | None = Field(None, ge=0)
    """Seed of the learner; null: the run's seed."""
    engine: EngineConfig = EngineConfig()
    """DeepSpeed engine of the actor (the critic uses the same settings)."""
    optimizer: OptimizerConfig = OptimizerConfig()
    """The actor's optimizer."""
    reference: ReferenceConfig = ReferenceConfig()
    """Frozen reference model for the KL term (loaded only when the KL placement is not `none`)."""
    critic: CriticConfig = CriticConfig()
    """Value critic for PPO/GAE."""
    algorithm: AlgorithmConfig = AlgorithmConfig()
    """Advantages, losses and KL, by registered name."""
    groups_per_step: int = Field(8, ge=1)
    """TrajectoryGroups per learner step."""
    max_steps: int = Field(0, ge=0)
    """Stop after this many learner steps (0: run until stopped)."""
    max_policy_lag: int = Field(4, ge=0)
    """A group sampled by weights more than this many versions old is stale."""
    stale_groups: Literal["drop", "correct"] = "drop"
    """Stale groups are dead-lettered (counted), or trained with the configured
    truncated importance sampling transform."""
    checkpoint_every: int = Field(1, ge=1)
    """Save a checkpoint every this many steps. Groups are committed on the bus only
    once a checkpoint holds their update, so a crash retrains nothing twice."""
    keep_checkpoints: int = Field(2, ge=1)
    """Checkpoints kept on disk (older ones are deleted)."""
    export_hf_every: int | None = Field(None, ge=1)
    """Also export the actor as an HF-format folder (transformers/vLLM load it) every this
    many steps, to `<run_dir>/hf/step-NNNNNNN/`; these are kept, not pruned (null: only
    `<run_dir>/final/` at the end)."""
    sync: WeightSyncConfig = WeightSyncConfig()
    """Publishing new weights to the policy service."""
    consumer_name: str = Field("learner", min_length=1)
    """Name of the learner in the bus consumer group; keep it across restarts so
    unfinished groups come back at once."""
    receive_timeout_s: float = Field(0.0, ge=0)
    """Give up waiting for a full step of groups after this long (0: wait forever)."""
    stall_s: float = Field(1800.0, ge=0, le=7 * 86_400)
    """Watchdog of rank 0 (docs/training.md, Deadlines and watchdogs): no progress for this
    many seconds ends the learner with a named error and exit status 75, and `outrider train`
    restarts it from its last checkpoint (0: off). Progress is every poll of the bus while
    waiting for groups (so slow rollouts never trip it) and every phase of a step, within
    an update its scoring pass and each mini-batch of each epoch; so set it above the longest
    single one: loading (DeepSpeed's first CPU Adam build takes ~3 min), one mini-batch's
    update, the weight sync (`sync.timeout_s`), one checkpoint."""
    metrics_port: int | None = Field(0, ge=0, le=65535)
    """Prometheus endpoint of rank 0 (0: a free port; null: off)."""
    report_to: list[Tracker] = Field(default_factory=lambda: ["tensorboard"])
    """Experiment trackers that get every step's metrics and sample episodes, besides
    metrics.jsonl and Prometheus: `tensorboard` (event files in `<run_dir>/tensorboard/`),
    `wandb` (see `wandb`); `[]`: none."""
    wandb: WandbConfig = WandbConfig()
    """The W&B run, when `report_to` names `wandb`."""
    log_samples: int = Field(4, ge=0, le=64)
    """Sample episodes per step (prompt, the rest of the episode, reward; the best and the
    worst of the first groups) decoded into `<run_dir>/samples.jsonl`, the trackers and
    the run report (0: none)."""

    @model_validator(mode="after")
    def _consistent(self) -> LearnerConfig:
        needs = self.algorithm.needs()
        if "values" in needs and not self.critic.enabled:
            raise ValueError(
                f"advantage {self.algorithm.advantage.name!r} needs a value critic: set learner.critic.enabled: true"
            )
        tis = {"tis_token", "tis_sequence", "tis_partial"}
        if self.stale_groups == "correct" and not tis & {t.name for t in self.algorithm.transforms}:
            raise ValueError(
                "stale_groups: correct needs a truncated importance sampling transform "
                "(tis_token, tis_sequence or tis_partial) in algorithm.transforms"
            )
        return self


def algorithm_names() -> dict[str, list[str]]:
    """Valid names per algorithm kind (for docs and error messages)."""
    kinds = ("advantage", "policy_loss", "loss_transform", "aggregation", "kl_estimator", "reward_shaping", "preference_loss")
    return {kind: names(kind) for kind in kinds}

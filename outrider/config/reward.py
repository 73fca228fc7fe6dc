"""Config of the reward service (verifiers and process reward models)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from outrider.config.base import ConfigModel
from outrider.config.common import ServerConfig
from outrider.config.env import SandboxConfig

DEFAULT_ENV_KEY = "*"
PRM_DISAGREEMENT = "prm_disagreement"
"""Reward component name of a PRM ensemble's disagreement (mean over steps of the members'
std), recorded by the rollout and read by the learner."""


class ConstraintConfig(ConfigModel):
    """Hold a component to a bound instead of weighting it into the reward (docs/reward.md):
    the learner's reward is R = r_main − λ·max(0, g) with violation g = r − ε (`at_most`)
    or ε − r (`at_least`), and λ follows the measured violation (learner `algorithm.constraints`)."""

    threshold: float = Field(..., ge=-1e6, le=1e6)
    """ε: the bound on the verifier's value."""
    direction: Literal["at_most", "at_least"] = "at_most"
    """`at_most`: value ≤ ε (a cost such as harm or length); `at_least`: value ≥ ε."""


class _VerifierBase(ConfigModel):
    weight: float = Field(1.0, ge=-100.0, le=100.0)
    """Factor of this verifier's value in the weighted sum that is the reward (unused by a constraint)."""
    timeout_s: float = Field(30.0, gt=0, le=3600)
    """A verifier still running after this long yields status TIMEOUT for the item (no reward)."""
    constraint: ConstraintConfig | None = None
    """Set: this verifier is a Lagrangian constraint, left out of the weighted sum; null: a weighted term."""


class MathVerifierConfig(_VerifierBase):
    """Final numeric answer against the reference: 1 when equal, else 0."""

    type: Literal["math"] = "math"
    """Verifier name."""
    rel_tol: float = Field(1e-6, ge=0, le=1)
    """Answers within `abs_tol + rel_tol * |reference|` of the reference are correct."""
    abs_tol: float = Field(1e-9, ge=0)
    """Absolute part of the tolerance (see `rel_tol`)."""
    percent: Literal["either", "fraction", "literal"] = "either"
    """How `p%` compares: `either` accepts p/100 and p (datasets store both forms),
    `fraction` only p/100, `literal` only p."""


class CodeVerifierConfig(_VerifierBase):
    """The response's code runs against the reference's hidden tests in the sandbox."""

    type: Literal["code"] = "code"
    """Verifier name."""
    partial_credit: bool = False
    """Value = fraction of tests passed; false: 1 only when every test passes."""
    sandbox: SandboxConfig = SandboxConfig()
    """Sandbox backend and limits of each test run."""


class FormatVerifierConfig(_VerifierBase):
    """Response shape: a regular expression and/or a required final-answer marker; 1 or 0."""

    type: Literal["format"] = "format"
    """Verifier name."""
    pattern: str | None = None
    """Python regular expression the response must match (DOTALL); null: no pattern check."""
    full_match: bool = False
    """The pattern must match the whole response (else: anywhere in it)."""
    require_answer: Literal["none", "boxed", "marker", "any"] = "none"
    """Required final answer form: `\\boxed{..}`, `Answer: ..`, either, or none."""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class LengthVerifierConfig(_VerifierBase):
    """DAPO soft overlong punishment (Yu et al. 2025, eq. 13): 0 up to max − buffer,
    then linearly down to −1 at max, −1 beyond."""

    type: Literal["length"] = "length"
    """Verifier name."""
    max_length: int = Field(4096, ge=1)
    """L_max: responses longer than this get −1."""
    buffer: int = Field(512, ge=0)
    """L_cache: the penalty ramps over the last this-many units before L_max (0: a hard cliff)."""
    unit: Literal["tokens", "chars"] = "tokens"
    """Measure ScoreItem.response_tokens (must be sent) or the response's characters."""

    @model_validator(mode="after")
    def _buffer_fits(self) -> LengthVerifierConfig:
        if self.buffer > self.max_length:
            raise ValueError(f"buffer ({self.buffer}) must not exceed max_length ({self.max_length})")
        return self


VerifierConfig = Annotated[
    MathVerifierConfig | CodeVerifierConfig | FormatVerifierConfig | LengthVerifierConfig,
    Field(discriminator="type"),
]
VERIFIER_CONFIGS: dict[str, type[_VerifierBase]] = {
    "math": MathVerifierConfig,
    "code": CodeVerifierConfig,
    "format": FormatVerifierConfig,
    "length": LengthVerifierConfig,
}
"""Verifier name -> its config model (defaults serve verifiers a request names but the config lacks)."""


class SegmentationConfig(ConfigModel):
    mode: Literal["turn", "delimiter"] = "delimiter"
    """`turn`: each assistant message is one step; `delimiter`: messages split at `delimiter`."""
    delimiter: str = Field("\n\n", min_length=1)
    """Step boundary inside an assistant message (delimiter mode)."""


class _PRMBase(ConfigModel):
    model: str = Field(..., min_length=1)
    """A local HF folder or a built-in model name (`smollm2-135m-instruct`, `tiny-random`)."""
    batch_size: int = Field(8, ge=1, le=4096)
    """Sequences per forward pass."""
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    """`auto`: CUDA when available, else CPU."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights' dtype (bfloat16/float16 for GPUs)."""


class ScalarHeadPRMConfig(_PRMBase):
    """A decoder with a one-label sequence-classification head (e.g. from `outrider reward train`)."""

    type: Literal["scalar-head"] = "scalar-head"
    """PRM kind."""
    separator: str | None = None
    """Text appended after each step, where its score is read; null: the model folder's
    `outrider_prm.json` (what it was trained with), else a newline."""


class LMJudgePRMConfig(_PRMBase):
    """A causal LM asked whether each step is correct: s_t = P(positive) / (P(positive) + P(negative))."""

    type: Literal["lm-judge"] = "lm-judge"
    """PRM kind."""
    positive: str = Field("+", min_length=1)
    """Answer meaning "correct"; must be one token."""
    negative: str = Field("-", min_length=1)
    """Answer meaning "wrong"; must be one token."""
    template: str = (
        "Here is a conversation and one step of the assistant's solution.\n\n{context}\n"
        "Step to check:\n{step}\n\nIs this step correct? Answer {positive} or {negative}."
    )
    """Judge prompt; `{context}` (conversation up to the step), `{step}`, `{positive}`, `{negative}`."""
    chat_template: bool = True
    """Wrap the prompt in the tokenizer's chat template (when it has one)."""

    @field_validator("template")
    @classmethod
    def _has_fields(cls, value: str) -> str:
        for name in ("{context}", "{step}"):
            if name not in value:
                raise ValueError(f"template must contain {name}")
        return value


SinglePRMConfig = Annotated[ScalarHeadPRMConfig | LMJudgePRMConfig, Field(discriminator="type")]


class EnsemblePRMConfig(ConfigModel):
    """Several PRMs served together (docs/reward.md, "Ensembles"): every member scores every
    step, s_t combines them by `combine`, and their disagreement (std over members, mean over
    steps) comes back with each item. A member that fails or scores non-finite values makes
    the item's status ERROR, naming the member: never dropped from the combination."""

    type: Literal["ensemble"] = "ensemble"
    """PRM kind."""
    members: list[SinglePRMConfig] = Field(..., min_length=2, max_length=16)
    """The member PRMs (each loaded like a single `prm`; memory: the sum of the members')."""
    combine: Literal["mean", "min", "lower_bound"] = "mean"
    """s_t = mean over members; the minimum; or mean − k·std (a conservative lower bound)."""
    k: float = Field(1.0, ge=0.0, le=100.0)
    """Standard deviations subtracted by `lower_bound`."""


PRMConfig = Annotated[ScalarHeadPRMConfig | LMJudgePRMConfig | EnsemblePRMConfig, Field(discriminator="type")]


class RewardLimits(ConfigModel):
    """Request bounds; a request beyond them is answered INVALID_ARGUMENT, naming the item."""

    max_batch_items: int = Field(1024, ge=1, le=1_000_000)
    """Items in one Score or ScoreSteps request."""
    max_response_chars: int = Field(200_000, ge=1)
    """Characters of one ScoreItem's response."""
    max_trajectory_chars: int = Field(400_000, ge=1)
    """Characters of one StepsItem's conversation, all messages together."""
    max_trajectory_tokens: int = Field(4096, ge=1)
    """PRM input tokens of one trajectory (turn mode) or one judge prompt."""
    max_steps: int = Field(256, ge=1)
    """Steps in one trajectory."""


def _default_verifiers() -> dict[str, list]:
    return {DEFAULT_ENV_KEY: [MathVerifierConfig()]}


class RewardServiceConfig(ConfigModel):
    kind: Literal["reward"] = "reward"
    """Config kind marker (lets `outrider config validate` pick the model)."""
    server: ServerConfig = ServerConfig()
    """gRPC server settings."""
    verifiers: dict[str, list[VerifierConfig]] = Field(default_factory=_default_verifiers)
    """Verifiers per environment name; `*` serves environments without their own entry.
    The reward is the weighted sum of the values of the verifiers that are not constraints."""
    prm: PRMConfig | None = None
    """Process reward model (or an ensemble of them) for ScoreSteps; null: ScoreSteps answers FAILED_PRECONDITION."""
    segmentation: SegmentationConfig = SegmentationConfig()
    """Default cut of trajectories into steps (a request may override it)."""
    shaping: Literal["difference", "min", "last", "raw"] = "difference"
    """Default step scores -> rewards: r_t = s_t − s_{t−1}; min_t s_t at the end; s_T at the end; s_t."""
    limits: RewardLimits = RewardLimits()
    """Request bounds."""

    @field_validator("verifiers")
    @classmethod
    def _non_empty(cls, value: dict[str, list]) -> dict[str, list]:
        for env, specs in value.items():
            if not specs:
                raise ValueError(f"environment {env!r} lists no verifiers")
            names = [spec.type for spec in specs]
            if len(set(names)) != len(names):
                raise ValueError(f"environment {env!r} lists a verifier twice: {names}")
            if all(spec.constraint is not None for spec in specs):
                raise ValueError(f"environment {env!r}: every verifier is a constraint, none makes the reward")
        return value

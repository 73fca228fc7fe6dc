"""The inference backend interface both engines implement (vLLM and HF transformers).

A backend knows token ids only: prompts arrive rendered and validated, and
completions leave as sampled ids with the log-probability of each under the
raw model distribution (temperature 1, before top-k/top-p), so a trainer can
recompute the same number from the same weights. Versions, admission control
and request validation live above, in `core.PolicyCore`.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

FinishReason = Literal["stop", "length", "abort"]


class BackendDead(RuntimeError):
    """The inference engine is gone (e.g. its process died); only a restart helps."""


class WeightsNotApplied(RuntimeError):
    """A weights update failed before any served weight changed (its tensors could not be
    read or staged): the old weights still serve, under their version."""


class SnapshotsUnsupported(RuntimeError):
    """The backend cannot hold earlier weights versions (policy.max_resident_versions > 1)."""


class EntropiesUnsupported(RuntimeError):
    """The backend cannot compute full-vocabulary entropies (ScoreTokens answers UNIMPLEMENTED)."""


@dataclass(frozen=True)
class SamplingSpec:
    """Validated sampling parameters (see `SamplingParams` in policy.proto)."""

    n: int = 1
    temperature: float = 1.0
    """0 means greedy."""
    top_p: float = 1.0
    top_k: int = 0
    """0 disables."""
    max_tokens: int = 16
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    seed: int | None = None
    """Sample j of a prompt uses seed + j (as vLLM does), so samples differ but replay."""
    ignore_eos: bool = False
    top_logprobs: int = 0
    """Also report this many most likely tokens at each position, under the raw distribution
    `logprobs` describe; 0 (the default) costs nothing. The OpenAI API's `top_logprobs`."""


TopLogprobs = list[tuple[int, float]]
"""The most likely (token id, raw log-probability) pairs at one position, most likely first."""


@dataclass
class CompletionResult:
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: FinishReason
    stop_string: str = ""
    text: str = ""
    support_logprobs: list[float] = field(default_factory=list)
    """Renormalised over the truncated support (Completion.support_logprobs); empty without truncation."""
    top_logprobs: list[TopLogprobs] = field(default_factory=list)
    """One entry per token with `SamplingSpec.top_logprobs` > 0; empty otherwise."""


@dataclass
class CompletionDelta:
    """New tokens of one completion since its previous delta; the last has `finish_reason`."""

    prompt_index: int
    completion_index: int
    token_ids: list[int]
    logprobs: list[float]
    text_delta: str = ""
    finish_reason: FinishReason | None = None
    stop_string: str = ""
    top_logprobs: list[TopLogprobs] = field(default_factory=list)
    """As in CompletionResult, for this delta's tokens."""


@dataclass(frozen=True)
class ModelInfo:
    max_context: int
    vocab_size: int
    eos_token_ids: tuple[int, ...]
    dtype: str
    device: str


@dataclass
class WeightsUpdate:
    """New weights: an HF folder on disk, one staged safetensors file, or tensors
    already received in memory (exactly one of the three).

    Tensors use the HF checkpoint's parameter names; the set was checked
    against the served model (names, shapes) before a backend sees it.
    """

    path: Path | None = None
    file: Path | None = None
    """A safetensors file the sender staged on this host (read in place, never copied)."""
    tensors: Mapping[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadTimings:
    """Where a backend's weights load spent its time, seconds (reported to the sender)."""

    stage_seconds: float = 0.0
    """Writing received tensors to a file the engine's workers read."""
    reload_seconds: float = 0.0
    """Loading the tensors into the model."""
    cache_reset_seconds: float = 0.0
    """Dropping cached state computed with the old weights (vLLM's prefix cache)."""


class Backend(abc.ABC):
    """One inference engine serving one model."""

    name: str

    @property
    @abc.abstractmethod
    def info(self) -> ModelInfo: ...

    @abc.abstractmethod
    async def start(self) -> None:
        """Load the model; after this the backend serves."""

    @abc.abstractmethod
    async def shutdown(self) -> None: ...

    @abc.abstractmethod
    async def generate(
        self, prompts: list[list[int]], sampling: SamplingSpec, snapshot: int | None = None
    ) -> list[list[CompletionResult]]:
        """`sampling.n` completions for every prompt, in prompt order then sample order;
        with the weights kept by `snapshot(version)` when `snapshot` names one (else the served ones)."""

    @abc.abstractmethod
    def generate_stream(
        self, prompts: list[list[int]], sampling: SamplingSpec, snapshot: int | None = None
    ) -> AsyncIterator[CompletionDelta]:
        """The same, as deltas while tokens are sampled. Closing the iterator aborts the rest."""

    async def snapshot(self, version: int) -> None:
        """Keep a copy of the served weights, to generate with later under `version` (the core
        calls it with no request in flight, before a weights load replaces them)."""
        raise SnapshotsUnsupported(f"the {self.name} backend cannot keep earlier weights versions")

    async def drop_snapshot(self, version: int) -> None:
        """Free the copy kept as `version`."""

    @abc.abstractmethod
    async def score(self, sequences: list[tuple[list[int], int]]) -> list[list[float]]:
        """Teacher-forced log pi(ids[i] | ids[:i]) for i in [prompt_length, len(ids)), per (ids, prompt_length)."""

    @property
    def entropy_token_limit(self) -> int | None:
        """Longest sequence `score_with_entropies` accepts (None: up to the context)."""
        return None

    async def score_with_entropies(self, sequences: list[tuple[list[int], int]]) -> list[tuple[list[float], list[float]]]:
        """`score`, plus the entropy H = −Σ_v π(v | ids[:i]) log π(v | ids[:i]) of the whole
        next-token distribution at every scored position i (nats, temperature 1)."""
        raise EntropiesUnsupported(f"the {self.name} backend cannot compute token entropies")

    @abc.abstractmethod
    async def load_weights(self, update: WeightsUpdate) -> LoadTimings:
        """Replace the weights in place. Called with no request in flight (the core gates them)."""


def vllm_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX-512 BF16 or AMX). Without
    them (AVX2-only x86, e.g. many AMD EPYC VMs) bfloat16 matmuls are emulated: a
    135M model then generates roughly an order of magnitude slower than in float32."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(dtype: str, checkpoint_dtype: str | None, device: str, native_bf16: bool | None = None) -> torch.dtype:
    """The dtype to serve: the configured one; `auto`: the checkpoint's, except on a CPU,
    where a half-precision checkpoint is served in bfloat16 only when the CPU has native
    bfloat16 (`cpu_has_native_bf16`), else in float32 (float16 has no fast CPU kernels)."""
    name = (checkpoint_dtype or "float32") if dtype == "auto" else dtype
    if device == "cpu" and name in ("float16", "bfloat16"):
        if dtype == "auto" and not (cpu_has_native_bf16() if native_bf16 is None else native_bf16):
            name = "float32"
        elif name == "float16":
            name = "bfloat16"
    resolved = getattr(torch, name, None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"unsupported dtype {name!r}")
    return resolved

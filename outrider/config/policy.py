"""Config of the policy service (inference of the current policy)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from outrider.config.base import ConfigModel
from outrider.config.common import SecretUrl, ServerConfig


class PolicyLimits(ConfigModel):
    """Request limits; a request beyond one is refused with INVALID_ARGUMENT naming it."""

    max_prompts: int = Field(64, ge=1, le=65536)
    """Most prompts in one Generate/ScoreTokens/Tokenize request."""
    max_n: int = Field(64, ge=1, le=4096)
    """Most completions per prompt (`sampling.n`)."""
    max_tokens: int = Field(4096, ge=1, le=1_048_576)
    """Most new tokens a request may ask for per completion (`sampling.max_tokens`)."""
    default_max_tokens: int = Field(256, ge=1, le=1_048_576)
    """New tokens per completion when a request leaves `max_tokens` unset."""
    max_context: int | None = Field(None, ge=2, le=1_048_576)
    """Prompt plus completion tokens per sequence; null: the model's `max_position_embeddings`
    (a larger value than that is a config error at start)."""
    max_concurrent_requests: int = Field(256, ge=1, le=1_000_000)
    """Generate/ScoreTokens calls (gRPC and HTTP together) admitted at once; the next one
    gets RESOURCE_EXHAUSTED (HTTP 429) instead of queueing without bound."""
    overload_retry_after_ms: int = Field(1000, ge=1, le=600_000)
    """Retry hint of that refusal: gRPC trailing metadata `retry-after-ms`, HTTP `Retry-After`
    (whole seconds, rounded up). A slot frees only when an admitted call ends, so the hint
    should be about the time a typical call takes: clients then back off that long instead
    of retrying at once into the same full queue. Raise it for slow backends or long
    completions."""

    @model_validator(mode="after")
    def _default_within_max(self) -> PolicyLimits:
        if self.default_max_tokens > self.max_tokens:
            raise ValueError(f"default_max_tokens ({self.default_max_tokens}) exceeds max_tokens ({self.max_tokens})")
        return self


class VllmOptions(ConfigModel):
    """Settings used only by the vLLM backend."""

    cpu_kv_cache_gib: int = Field(2, ge=1, le=4096)
    """On CPU: RAM reserved for the KV cache, whole GiB (sets `VLLM_CPU_KVCACHE_SPACE`;
    vLLM's default share of RAM fails on small machines)."""
    cpu_reserved_cores: int | None = Field(0, ge=0, le=1024)
    """On CPU: cores vLLM keeps free of its compute threads for its scheduler process
    (sets `VLLM_CPU_NUM_OF_RESERVED_CPU`). vLLM's own default (null here) reserves one
    per worker, which on a 2-core host leaves one core for generation: 0 decoded 1.75x
    faster there (docs/benchmarks.md). Raise it on hosts with many cores to spare."""
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)
    """On GPU: fraction of GPU memory vLLM may use for weights, activations and KV cache."""
    max_num_seqs: int = Field(256, ge=1, le=65536)
    """Sequences the engine schedules in one step (continuous batching width)."""
    enforce_eager: bool = True
    """Skip graph capture/compilation: starts faster (on CPU, compilation costs minutes);
    set false on GPU for the fastest decoding."""
    enable_prefix_caching: bool = True
    """Reuse KV blocks of shared prompt prefixes (the cache is reset on every weights update)."""
    tensor_parallel_size: int = Field(1, ge=1, le=64)
    """GPUs one replica shards the model over."""
    max_entropy_tokens: int = Field(256, ge=2, le=1_048_576)
    """Longest sequence ScoreTokens scores with `return_entropies`. vLLM hands out the whole
    vocabulary's log-probabilities at every position of it, as Python objects in this
    process (~150 bytes x vocabulary per token: ~7 MB per token with a 49k vocabulary), so
    this bounds a request's memory; such requests also run one sequence at a time."""


class HfOptions(ConfigModel):
    """Settings used only by the HF transformers backend."""

    max_batch_rows: int = Field(256, ge=1, le=65536)
    """Most sequences (prompts x n, over all waiting requests) decoded together in one batch."""
    score_batch_tokens: int = Field(16384, ge=1)
    """Padded tokens per forward pass when scoring sequences (bounds activation memory)."""


class CaptureConfig(ConfigModel):
    """Captured agent sessions (`/sessions/<id>/v1`, docs/agents.md): every chat call of a
    session is recorded token for token in Redis as it is served."""

    redis_url: SecretUrl | None = None
    """Redis that keeps the sessions (`redis://host:port/db`; `${NAME}`: an environment
    variable, as in `redis.url`); null turns session capture
    off (those routes answer 404 saying so). `outrider up` and `train` set the run's Redis."""
    prefix: str = Field("outrider:capture", min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    """Key prefix of the session records."""
    ttl_s: int = Field(24 * 3600, ge=60, le=30 * 24 * 3600)
    """A session's records expire this long after its last call, seconds."""


class PolicyServiceConfig(ConfigModel):
    kind: Literal["policy"] = "policy"
    """Config kind marker (lets `outrider config validate` pick the model)."""
    server: ServerConfig = ServerConfig()
    """gRPC server settings."""
    model: str = Field("smollm2-135m-instruct", min_length=1)
    """A built-in model (`smollm2-135m-instruct`, `tiny-random`) or a local HF model folder."""
    served_model_name: str | None = Field(None, min_length=1, max_length=256)
    """Name clients use in `model` fields (gRPC and OpenAI API); null: `model` itself."""
    backend: Literal["auto", "vllm", "hf"] = "auto"
    """Inference engine; `auto` is vLLM when it can be imported, else HF transformers."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights and activations dtype; `auto` takes the checkpoint's dtype, except on a CPU:
    there a float16/bfloat16 checkpoint is served in bfloat16 when the CPU has native
    bfloat16 (AVX-512 BF16 or AMX), else in float32 (emulated bfloat16 on an AVX2-only CPU
    is many times slower). An explicit float16 is served as bfloat16 on CPU."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """`auto` is cuda when a GPU is visible, else cpu."""
    seed: int = Field(0, ge=0, le=2**63 - 1)
    """Seed of the engine's random state (requests without a seed draw from it)."""
    limits: PolicyLimits = PolicyLimits()
    """Request limits (prompts, n, tokens, context, concurrency)."""
    http_port: int | None = Field(0, ge=0, le=65535)
    """Port of the OpenAI-compatible HTTP API on the same interface; 0 picks a free port,
    null turns it off."""
    capture: CaptureConfig = CaptureConfig()
    """Session-scoped, token-capturing chat API for agent programs (needs `http_port`)."""
    vllm: VllmOptions = VllmOptions()
    """vLLM backend settings."""
    hf: HfOptions = HfOptions()
    """HF transformers backend settings."""
    max_version_jump: int = Field(1_000_000, ge=1, le=2**64 - 1)
    """Most an UpdateWeights may raise the weights version at once (new - served); a larger
    step is refused with INVALID_ARGUMENT, so no caller can push a version (such as 2^64-1)
    after which the learner's next version would never be newer."""
    max_resident_versions: int = Field(1, ge=1, le=16)
    """Weights versions held at once, so that Generate can be pinned to an earlier one
    (`GenerateRequest.policy_version`; self-play opponents, docs/self-play.md): the served
    version and up to N - 1 before it, the oldest dropped first. Each one is a full copy of
    the weights in the serving dtype and device (memory: N x the model's bytes). HF backend
    only; with vLLM, N > 1 fails at start. 1: only the served version, as before."""

    @property
    def model_name(self) -> str:
        """The name this service answers to."""
        return self.served_model_name or self.model

"""From a PolicyServiceConfig to a started backend and the core around it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from outrider.config.policy import PolicyServiceConfig
from outrider.models import resolve_model
from outrider.services.policy.backend import Backend, resolve_device, resolve_dtype, vllm_importable
from outrider.services.policy.core import PolicyCore
from outrider.services.policy.prompts import PromptRenderer
from outrider.services.policy.weights import WeightsSchema

log = logging.getLogger(__name__)


class PolicyStartError(RuntimeError):
    """The configured model/backend/device combination cannot be served."""


def choose_backend(name: str) -> str:
    if name == "auto":
        return "vllm" if vllm_importable() else "hf"
    if name == "vllm" and not vllm_importable():
        raise PolicyStartError("backend: 'vllm' is configured but the vllm package is not installed (use 'hf' or 'auto')")
    return name


def model_facts(model_dir: Path) -> tuple[int, str | None]:
    """(max_position_embeddings, checkpoint dtype name) from config.json."""
    config = json.loads((model_dir / "config.json").read_text())
    text_config = config.get("text_config", config)
    max_positions = text_config.get("max_position_embeddings") or config.get("max_position_embeddings")
    if not max_positions:
        raise PolicyStartError(f"{model_dir}/config.json has no max_position_embeddings; set limits.max_context")
    dtype = config.get("dtype") or config.get("torch_dtype")
    return int(max_positions), dtype


def build_backend(cfg: PolicyServiceConfig, model_dir: Path, renderer: PromptRenderer) -> Backend:
    import torch

    device = resolve_device(cfg.device)
    if device == "cuda" and not torch.cuda.is_available():
        raise PolicyStartError("device: 'cuda' is configured but no CUDA GPU is visible")
    max_positions, checkpoint_dtype = model_facts(model_dir)
    max_context = cfg.limits.max_context or max_positions
    if max_context > max_positions:
        raise PolicyStartError(
            f"limits.max_context: {max_context} exceeds the model's max_position_embeddings {max_positions}"
        )
    dtype = resolve_dtype(cfg.dtype, checkpoint_dtype, device)
    common = dict(
        dtype=dtype, device=device, max_context=max_context, eos_token_ids=renderer.eos_token_ids,
        vocab_size=renderer.vocab_size, seed=cfg.seed,
    )
    if choose_backend(cfg.backend) == "vllm":
        from outrider.services.policy.vllm_backend import VLLMBackend

        if cfg.max_resident_versions > 1:
            # One engine serves one set of weights; earlier versions would need an engine (and
            # its KV cache) each, or LoRA adapters per version (docs/self-play.md).
            raise PolicyStartError(
                f"max_resident_versions: {cfg.max_resident_versions} needs the hf backend; "
                "the vllm backend serves one weights version (set it to 1, or backend: hf)"
            )

        return VLLMBackend(model_dir, options=cfg.vllm, **common)
    from outrider.services.policy.hf_backend import HFBackend

    return HFBackend(
        model_dir, tokenizer=renderer.tokenizer, max_batch_rows=cfg.hf.max_batch_rows,
        score_batch_tokens=cfg.hf.score_batch_tokens, **common,
    )


async def build_core(cfg: PolicyServiceConfig) -> PolicyCore:
    """Resolve the model, start the backend, and wrap it (the backend is stopped again on failure)."""
    try:
        model_dir = resolve_model(cfg.model)
    except ValueError as exc:
        raise PolicyStartError(f"model: {exc}") from None
    renderer = PromptRenderer(model_dir)
    schema = WeightsSchema.of(model_dir)
    backend = build_backend(cfg, model_dir, renderer)
    log.info("starting the %s backend for %s", backend.name, model_dir)
    try:
        await backend.start()
    except BaseException:
        await backend.shutdown()
        raise
    return PolicyCore(cfg, backend, renderer, schema)

"""vLLM's engine in a bench's own process, built exactly as the policy service builds it.

The baselines "vLLM in-process" of bench/policy_throughput.py and bench/eval.py use
these, so that the engine they measure has the policy service's engine arguments
(`VLLMBackend.engine_args`), its environment (`engine_environment`: the CPU KV cache
size, reserved cores) and its dtype, device and context length (`build_backend`, the
service's own factory), and no gRPC layer around it.
"""

from __future__ import annotations

import os

from outrider.config.policy import PolicyServiceConfig


def service_backend(cfg: PolicyServiceConfig):
    """(VLLMBackend, PromptRenderer) that the policy service builds for `cfg`, not started.
    The backend is vLLM whatever `cfg.backend` says (a baseline of vLLM must be vLLM)."""
    from outrider.models import resolve_model
    from outrider.services.policy.factory import build_backend
    from outrider.services.policy.prompts import PromptRenderer

    model_dir = resolve_model(cfg.model)
    renderer = PromptRenderer(model_dir)
    return build_backend(cfg.model_copy(update={"backend": "vllm"}), model_dir, renderer), renderer


def start_engine(backend):
    """An AsyncLLM with the backend's engine arguments and environment. Call it inside the
    event loop that will use it (the engine client binds to the running loop)."""
    from vllm.v1.engine.async_llm import AsyncLLM

    os.environ.update(backend.engine_environment())
    return AsyncLLM.from_engine_args(backend.engine_args())


def stop_engine(engine) -> None:
    """Shut the engine (and its engine-core process) down now, not at interpreter exit,
    where its finalizer fails."""
    engine.shutdown()

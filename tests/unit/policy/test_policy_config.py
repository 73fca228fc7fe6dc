"""PolicyServiceConfig: defaults, bounds and cross-field checks fail at load time with the field path."""

from __future__ import annotations

from pathlib import Path

import pytest

from outrider.config import ConfigError, PolicyServiceConfig, parse_config


def test_defaults_serve_smollm2_with_auto_backend_and_http_on():
    cfg = PolicyServiceConfig()
    assert (cfg.model, cfg.backend, cfg.http_port, cfg.model_name) == ("smollm2-135m-instruct", "auto", 0, "smollm2-135m-instruct")
    assert cfg.limits.default_max_tokens <= cfg.limits.max_tokens


def test_served_model_name_overrides_the_name():
    assert PolicyServiceConfig(model="/models/x", served_model_name="policy").model_name == "policy"


@pytest.mark.parametrize(
    "data, path",
    [
        ({"backend": "tgi"}, "backend"),
        ({"limits": {"max_n": 0}}, "limits.max_n"),
        ({"limits": {"max_context": 1}}, "limits.max_context"),
        ({"limits": {"default_max_tokens": 500, "max_tokens": 100}}, "limits"),
        ({"vllm": {"gpu_memory_utilization": 1.5}}, "vllm.gpu_memory_utilization"),
        ({"vllm": {"cpu_kv_cache_gib": 0}}, "vllm.cpu_kv_cache_gib"),
        ({"http_port": 70000}, "http_port"),
        ({"dtype": "int8"}, "dtype"),
        ({"limits": {"max_concurrent": 3}}, "limits.max_concurrent"),
    ],
)
def test_bad_values_name_their_field(data, path):
    with pytest.raises(ConfigError) as failure:
        parse_config({"kind": "policy", **data}, "policy.yaml")
    assert path in [p for p, _ in failure.value.problems]


def test_every_field_is_documented():
    from outrider.config.policy import HfOptions, PolicyLimits, VllmOptions

    for model in (PolicyServiceConfig, PolicyLimits, VllmOptions, HfOptions):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no docstring"


def _vllm_backend(device: str, **options):
    import torch

    from outrider.config.policy import VllmOptions
    from outrider.services.policy.vllm_backend import VLLMBackend

    return VLLMBackend(Path("/nonexistent"), dtype=torch.bfloat16, device=device, max_context=2048,
                       eos_token_ids=(2,), vocab_size=100, seed=0, options=VllmOptions(**options))


def test_vllm_cpu_engine_environment():
    # Default: no core reserved for vLLM's scheduler (on 2 cores vLLM would otherwise decode on one).
    assert _vllm_backend("cpu").engine_environment() == {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    assert _vllm_backend("cpu", cpu_kv_cache_gib=3, cpu_reserved_cores=None).engine_environment() == {"VLLM_CPU_KVCACHE_SPACE": "3"}
    assert _vllm_backend("cuda").engine_environment() == {}

"""policy.max_resident_versions: bounded at load time; the vLLM backend refuses more than one."""

from __future__ import annotations

import pytest

from outrider.config import ConfigError, PolicyServiceConfig, parse_config
from outrider.models import resolve_model
from outrider.services.policy.backend import vllm_importable
from outrider.services.policy.factory import PolicyStartError, build_backend
from outrider.services.policy.prompts import PromptRenderer


@pytest.mark.parametrize("value", [0, 17])
def test_out_of_bounds_is_refused_with_the_field_path(value):
    with pytest.raises(ConfigError, match="policy.max_resident_versions"):
        parse_config({"policy": {"max_resident_versions": value}})
    assert PolicyServiceConfig().max_resident_versions == 1


@pytest.mark.skipif(not vllm_importable(), reason="vllm is not installed here")
def test_vllm_backend_refuses_several_resident_versions_before_starting():
    model_dir = resolve_model("tiny-random")
    cfg = PolicyServiceConfig(model="tiny-random", backend="vllm", max_resident_versions=3)
    with pytest.raises(PolicyStartError, match="max_resident_versions: 3 needs the hf backend"):
        build_backend(cfg, model_dir, PromptRenderer(model_dir))

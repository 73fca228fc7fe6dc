"""The CUDA paths of both backends (run where a GPU is present; skipped elsewhere)."""

from __future__ import annotations

import pytest
import torch

from outrider.clients.policy import PolicyClient
from testkit.policy import PolicyServerThread, max_abs_diff, policy_config

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine (CI and dev boxes are CPU-only)"),
]


def vllm_has_cuda() -> bool:
    try:
        from vllm.platforms import current_platform
    except ImportError:
        return False
    return current_platform.is_cuda()


@pytest.mark.parametrize(
    "backend",
    ["hf", pytest.param("vllm", marks=pytest.mark.skipif(not vllm_has_cuda(), reason="the installed vllm is not a CUDA build"))],
)
def test_generation_and_scoring_on_cuda(backend):
    cfg = policy_config(backend, device="cuda", http_port=None, vllm={"gpu_memory_utilization": 0.3})
    with PolicyServerThread(cfg) as running, PolicyClient(running.address) as policy:
        assert policy.info().device == "cuda"
        prompt = [1, 4093, 198, 6004, 2, 198]
        first = policy.generate([prompt], temperature=0.0, max_tokens=16, ignore_eos=True)
        again = policy.generate([prompt], temperature=0.0, max_tokens=16, ignore_eos=True)
        assert list(first.results[0].completions[0].token_ids) == list(again.results[0].completions[0].token_ids)
        sampled = policy.generate([prompt], n=4, temperature=1.0, max_tokens=16, seed=1).results[0]
        sequences = [(prompt + list(c.token_ids), len(prompt)) for c in sampled.completions]
        scores = [list(s.logprobs) for s in policy.score_tokens(sequences).sequences]
        # float32 on a GPU: TF32 matmuls may differ more than CPU float32, hence 1e-3
        assert max_abs_diff([list(c.logprobs) for c in sampled.completions], scores) <= 1e-3

"""PRM device handling: CUDA when asked (and present), a clear start failure when it is not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from outrider.config import RewardServiceConfig, ServerConfig
from outrider.config.reward import ScalarHeadPRMConfig
from outrider.services.reward.prm import dataset as ds
from outrider.services.reward.prm import train as prm_train
from outrider.services.reward.prm.scalar_head import ScalarHeadPRM
from outrider.services.reward.server import create_server


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    tokenizer = prm_train.byte_tokenizer()
    model = prm_train.tiny_scorer(tokenizer, hidden_size=32, layers=2, seed=3)
    return prm_train.save_scorer(model, tokenizer, tmp_path_factory.mktemp("prm") / "m", prm_train.TrainSettings(), {})


async def test_cuda_requested_without_a_gpu_stops_the_start(tiny_model):
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present; this test needs a host without one")
    cfg = RewardServiceConfig(server=ServerConfig(metrics_port=None), prm=ScalarHeadPRMConfig(model=str(tiny_model), device="cuda"))
    with pytest.raises(OSError, match="device 'cuda' requested but CUDA is not available"):
        await create_server(cfg)


def test_auto_device_is_cpu_without_a_gpu(tiny_model):
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    assert ScalarHeadPRM(tiny_model, device="auto").device.type == "cpu"


@pytest.mark.gpu
def test_scores_on_cuda_match_cpu(tiny_model):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this host")
    records = ds.make_step_records(16, seed=0)
    encoded_cpu, encoded_gpu = [], []
    cpu, gpu = ScalarHeadPRM(tiny_model, device="cpu"), ScalarHeadPRM(tiny_model, device="cuda")
    for record in records:
        messages, spans = ds.as_conversation(record.prompt, record.steps)
        encoded_cpu.append(cpu.encode(messages, spans))
        encoded_gpu.append(gpu.encode(messages, spans))
    for a, b in zip(cpu.score(encoded_cpu), gpu.score(encoded_gpu), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)  # float32 kernels differ between devices

"""One policy server per backend for this whole folder (a package, so it is stopped when the
folder's tests end): vLLM takes ~30 s to start on 2 cores."""

from __future__ import annotations

import pytest

from outrider.clients.policy import PolicyClient
from testkit.policy import PolicyServerThread, policy_config

BACKENDS = ["hf", pytest.param("vllm", marks=[pytest.mark.vllm, pytest.mark.slow])]


@pytest.fixture(scope="package", params=BACKENDS)
def server(request):
    """A real policy service (gRPC + OpenAI HTTP) on tiny-random, float32, for each backend."""
    with PolicyServerThread(policy_config(request.param)) as running:
        yield running


@pytest.fixture
def client(server):
    with PolicyClient(server.address, timeout_s=300) as policy:
        yield policy

"""One policy server per backend for this whole folder (a package, so it is stopped when the
folder's tests end): vLLM takes ~30-60 s to start on 2 cores. Likewise one server per
backend of the tiny tool-calling model (testkit.tool_model), with captured sessions on."""

from __future__ import annotations

import pytest

import uuid

from outrider.clients.policy import PolicyClient
from testkit.policy import PolicyServerThread, policy_config
from testkit.tool_model import MODEL, build_tool_model

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


@pytest.fixture(scope="package")
def tool_model(tmp_path_factory):
    """tiny-random with Qwen2.5's template, trained to write one known tool call."""
    return build_tool_model(tmp_path_factory)


@pytest.fixture(scope="package")
def capture_prefix():
    return f"test-capture-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="package", params=BACKENDS)
def tool_server(request, tool_model, any_redis_url, capture_prefix):
    """The tool model served by each backend, capturing sessions in `capture_prefix`."""
    cfg = policy_config(request.param, model=str(tool_model), served_model_name=MODEL,
                        capture={"redis_url": any_redis_url, "prefix": capture_prefix})
    with PolicyServerThread(cfg) as running:
        running.backend = request.param
        yield running

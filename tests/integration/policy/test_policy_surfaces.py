"""The service's other doors: grpcurl through reflection, the `outrider` CLI, the real model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from outrider.cli.main import app
from outrider.clients.policy import PolicyClient
from testkit.policy import PolicyServerThread, max_abs_diff, policy_config

GRPCURL = Path(sys.executable).parent / "grpcurl"


def grpcurl(*args: str) -> str:
    done = subprocess.run([str(GRPCURL), "-plaintext", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_grpcurl_lists_and_calls_through_reflection(server):
    services = grpcurl(server.address, "list").split()
    assert "outrider.v1.PolicyService" in services and "grpc.health.v1.Health" in services
    methods = grpcurl(server.address, "list", "outrider.v1.PolicyService").split()
    assert "outrider.v1.PolicyService.UpdateWeights" in methods
    info = json.loads(grpcurl("-d", "{}", server.address, "outrider.v1.PolicyService/GetInfo"))
    assert info["model"] == "tiny-random" and info["backend"] == server.cfg.backend
    request = {"prompts": [{"tokenIds": {"ids": [1, 4093, 198]}}], "sampling": {"maxTokens": 3, "temperature": 0, "ignoreEos": True}}
    reply = json.loads(grpcurl("-d", json.dumps(request), server.address, "outrider.v1.PolicyService/Generate"))
    completion = reply["results"][0]["completions"][0]  # grpcurl 1.8 prints proto field names
    assert len(completion["token_ids"]) == 3 and completion["finish_reason"] == "FINISH_REASON_LENGTH"


def test_cli_query_and_info(server, client):
    runner = CliRunner()
    expected = client.generate([[{"role": "user", "content": "Say hi"}]], temperature=0.0, max_tokens=6)
    result = runner.invoke(app, ["policy", "query", "Say hi", "--address", server.address, "--max-tokens", "6"])
    assert result.exit_code == 0, result.output
    assert expected.results[0].completions[0].text in result.stdout
    raw = runner.invoke(app, ["policy", "query", "Hello", "--raw", "--address", server.address, "--max-tokens", "4",
                              "--temperature", "1", "--n", "2", "--seed", "3", "--show-ids"])
    assert raw.exit_code == 0, raw.output
    assert raw.stdout.count("--- completion") == 2 and raw.stdout.count("token_ids:") == 2
    info = runner.invoke(app, ["policy", "info", "--address", server.address])
    assert info.exit_code == 0 and f"backend             {server.cfg.backend}" in info.stdout
    bad = runner.invoke(app, ["policy", "query", "x", "--address", server.address, "--top-p", "2"])
    assert bad.exit_code == 1 and "INVALID_ARGUMENT" in bad.stderr and "top_p" in bad.stderr


@pytest.mark.slow
def test_smollm2_answers_through_the_hf_backend():
    """The real built-in model (materialized from the GGUF on first use), float32 so the
    sampled/scored logprobs agree tightly (bf16 numbers are in docs/benchmarks.md)."""
    cfg = policy_config("hf", model="smollm2-135m-instruct", dtype="float32", limits={"max_context": 2048}, http_port=None)
    with PolicyServerThread(cfg) as running, PolicyClient(running.address) as policy:
        question = [{"role": "user", "content": "What is 2+2? Answer with a number."}]
        reply = policy.generate([question], temperature=0.0, max_tokens=16)
        answer = reply.results[0].completions[0]
        # greedy SmolLM2-135M-Instruct: "The answer is 4." then <|im_end|> (id 2)
        assert answer.text == "The answer is 4."
        assert list(answer.token_ids)[-1] == 2 and answer.finish_reason == 1
        sampled = policy.generate([[{"role": "user", "content": "Write a line about the sea."}]], n=4,
                                  temperature=1.0, max_tokens=32, seed=1).results[0]
        sequences = [(list(sampled.prompt_ids) + list(c.token_ids), len(sampled.prompt_ids)) for c in sampled.completions]
        scores = [list(s.logprobs) for s in policy.score_tokens(sequences).sequences]
        assert max_abs_diff([list(c.logprobs) for c in sampled.completions], scores) <= 1e-4

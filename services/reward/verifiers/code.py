"""`code`: the response's code runs against hidden unit tests in the sandbox.

The reference is the code environment's (envs/builtin/code_env.py):
`{"tests": [["call expression", "expected expression"], ...], ...}` as JSON.
The code is the response's last ```python block (else the text from its first
`def`/`import`). It runs under the harness the code environment uses
(`outrider.envs.code_harness`), so an episode's reward and this verifier agree:
the tests are read from a file deleted before the solution is imported, and
results come back on a line prefixed by a fresh nonce (the solution cannot print
fake results).

Value: 1 when every test passes, else 0 (with `partial_credit`, the fraction
passed). A program that times out or crashes fails its tests (value 0, the
detail says why); a malformed reference or a broken sandbox is an ERROR.
"""

from __future__ import annotations

import json

from outrider.envs.code_harness import extract_code, harness_files, read_outcomes
from outrider.envs.sandbox import LimitHit, SandboxError, sandbox_from_config
from outrider.proto import jsontext
from outrider.services.reward.verifiers.base import Verdict, Verifier, VerifierError, VerifierInput


def parse_tests(reference: str) -> list[list[str]]:
    """The (call, expected) pairs of a reference; VerifierError when malformed."""
    try:
        spec = jsontext.loads(reference)
    except json.JSONDecodeError as exc:
        raise VerifierError(f"reference is not JSON ({exc.msg}); expected {{\"tests\": [[call, expected], ...]}}") from None
    tests = spec.get("tests") if isinstance(spec, dict) else None
    if not isinstance(tests, list) or not tests or not all(
        isinstance(t, list) and len(t) == 2 and all(isinstance(x, str) for x in t) for t in tests
    ):
        raise VerifierError('reference needs "tests": a non-empty list of [call, expected] string pairs')
    return tests


class CodeVerifier(Verifier):
    name = "code"

    def __init__(self, cfg):
        # As many items at once as the sandbox runs: an item waiting for a run is not timed.
        super().__init__(cfg, concurrency=cfg.sandbox.max_concurrent_runs)
        # Built at start: a code verifier without a sandbox is a configuration error.
        self.sandbox = sandbox_from_config(cfg.sandbox)

    async def verify(self, item: VerifierInput) -> Verdict:
        tests = parse_tests(item.reference)
        code = extract_code(item.response)
        if code is None:
            return Verdict(0.0, "no code found in the response")
        files, nonce = harness_files(code, tests)
        try:
            result = await self.sandbox.arun(files)
        except SandboxError as exc:
            raise VerifierError(f"sandbox ({self.sandbox.name}) failed: {exc}") from None
        outcomes = read_outcomes(result.stdout, nonce)
        total = len(tests)
        if outcomes is None:
            if result.limit_hit is not LimitHit.NONE:
                why = f"stopped: {result.limit_hit.name.lower().replace('_', ' ')} limit reached"
            else:
                why = f"the program ended (exit code {result.exit_code}) before the tests finished: {result.stderr.strip()[-200:]}"
            return Verdict(0.0, f"0/{total} tests passed; {why}")
        passed = sum(1 for ok, _ in outcomes if ok)
        failures = [message for ok, message in outcomes if not ok][:2]
        value = passed / total if self.cfg.partial_credit else float(passed == total)
        detail = f"{passed}/{total} tests passed" + (f"; {'; '.join(failures)}" if failures else "")
        return Verdict(value, detail)

    async def close(self) -> None:
        self.sandbox.close()

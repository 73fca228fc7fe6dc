"""Running a Python solution against hidden unit tests in the sandbox: one harness for all.

The `code` environment (`outrider.envs.builtin.code_env`) grades an episode with
it and the reward service's code verifier grades a response with it, so the two
agree on every reply: the same code is found (`extract_code`), run under the same
harness, and read back the same way (`read_outcomes`).

The harness reads the tests and a random nonce from a file it deletes before
importing the solution, and reports results on a line prefixed by the nonce,
so the solution can neither read the expected values from disk nor print fake
results (it could still inspect the harness's memory: this is a mitigation).
Tests are (call, expected) pairs of Python expressions: a test passes when
`eval(call) == eval(expected)`.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence

TESTS_FILE = ".outrider_tests.json"
_FENCED = re.compile(r"```(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_BARE_CODE = re.compile(r"^(?:def |import |from |class )", re.MULTILINE)

HARNESS = r'''
import json, os, sys
with open(".outrider_tests.json") as f:
    SPEC = json.load(f)
os.remove(".outrider_tests.json")
results = []
try:
    import solution
    namespace = vars(solution)
    load_error = None
except BaseException as exc:
    load_error = f"{type(exc).__name__}: {exc}"
for call, expected in SPEC["tests"]:
    if load_error is not None:
        results.append([False, f"your code failed to load: {load_error}"])
        continue
    try:
        got = eval(call, dict(namespace))
        if got == eval(expected, {}):
            results.append([True, ""])
        else:
            results.append([False, f"{call} returned {repr(got)[:200]}, expected {expected}"])
    except BaseException as exc:
        results.append([False, f"{call} raised {type(exc).__name__}: {str(exc)[:200]}"])
sys.stdout.flush()
print("\n" + SPEC["nonce"] + json.dumps(results), flush=True)
'''


def extract_code(reply: str) -> str | None:
    """The last fenced code block, else the reply from its first `def`/`import` on, else None."""
    blocks = _FENCED.findall(reply)
    if blocks:
        return blocks[-1]
    match = _BARE_CODE.search(reply)
    return reply[match.start() :] if match else None


def harness_files(code: str, tests: Sequence[Sequence[str]]) -> tuple[dict[str, str], str]:
    """The sandbox files that run `code` against `tests` (run `main.py`), and the run's fresh nonce."""
    nonce = secrets.token_hex(16)
    spec = json.dumps({"nonce": nonce, "tests": tests})
    return {"main.py": HARNESS, "solution.py": code, TESTS_FILE: spec}, nonce


def read_outcomes(stdout: str, nonce: str) -> list[tuple[bool, str]] | None:
    """[(passed, failure message)] per test, from the harness's last report line; None when
    the program ended before reporting (a crash, a limit, or a solution that exited)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(nonce):
            return [tuple(item) for item in json.loads(line[len(nonce) :])]
    return None

"""The code-test harness shared by the `code` environment and the reward service's code
verifier: code extraction, the files of a run, and the report read back — run for real
with this interpreter in a temporary folder (the sandboxed runs are in the integration tests)."""

from __future__ import annotations

import json
import subprocess
import sys

from outrider.envs.code_harness import HARNESS, TESTS_FILE, extract_code, harness_files, read_outcomes

TESTS = [["add(2, 3)", "5"], ["add(-1, 1)", "0"]]


def _run(tmp_path, code: str) -> list[tuple[bool, str]] | None:
    files, nonce = harness_files(code, TESTS)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    done = subprocess.run([sys.executable, "main.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert not (tmp_path / TESTS_FILE).exists()  # deleted before the solution was imported
    return read_outcomes(done.stdout, nonce)


def test_extract_code_takes_the_last_fenced_block_else_bare_code_else_none():
    reply = "First try:\n```python\ndef f(): return 1\n```\nBetter:\n```py\ndef f(): return 2\n```\n"
    assert extract_code(reply) == "def f(): return 2\n"
    assert extract_code("Here it is.\ndef f():\n    return 3\n") == "def f():\n    return 3\n"
    assert extract_code("The answer is 42.") is None


def test_harness_files_hold_the_tests_and_a_fresh_nonce():
    files, nonce = harness_files("def add(a, b): return a + b", TESTS)
    assert set(files) == {"main.py", "solution.py", TESTS_FILE}
    assert files["main.py"] == HARNESS
    assert json.loads(files[TESTS_FILE]) == {"nonce": nonce, "tests": TESTS}
    assert len(nonce) == 32 and harness_files("", TESTS)[1] != nonce


def test_a_correct_solution_passes_every_test(tmp_path):
    assert _run(tmp_path, "def add(a, b):\n    return a + b\n") == [(True, ""), (True, "")]


def test_a_wrong_solution_fails_with_the_call_and_both_values(tmp_path):
    # add(2, 3) = 2·3 + 1 = 7 ≠ 5 fails; add(-1, 1) = -1·1 + 1 = 0 passes.
    outcomes = _run(tmp_path, "def add(a, b):\n    return a * b + 1\n")
    assert outcomes == [(False, "add(2, 3) returned 7, expected 5"), (True, "")]


def test_a_solution_that_ends_the_process_leaves_no_report(tmp_path):
    # sys.exit would be caught (the harness catches BaseException); os._exit cannot be.
    assert _run(tmp_path, "import os\nos._exit(0)\n") is None


def test_a_solution_that_fails_to_load_fails_every_test(tmp_path):
    outcomes = _run(tmp_path, "import sys\nsys.exit(3)\n")
    assert outcomes == [(False, "your code failed to load: SystemExit: 3")] * 2


def test_only_the_line_behind_the_nonce_counts():
    # A line the solution printed (no nonce) is ignored; the harness's report is its last line.
    stdout = 'noise\n[[true, ""], [true, ""]]\nabc123[[false, "x"], [true, ""]]\n'
    assert read_outcomes(stdout, "abc123") == [(False, "x"), (True, "")]
    assert read_outcomes("no report at all\n", "abc123") is None

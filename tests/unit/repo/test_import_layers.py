"""The layers of docs/architecture.md hold, and the contracts that check them are live.

`lint-imports` (import-linter) reads the contracts from pyproject.toml
([tool.importlinter]). It must pass on the repository; on a copy of the package with
deliberately wrong imports added (one per contract, several inside functions, where a
dependency is easiest to hide) every contract must fail and name the offending import.
The layer table in docs/architecture.md must be the contract's list, bottom-up.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
PYPROJECT = REPO_ROOT / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# Wrong imports, each one that a contract forbids: (file in the copy, its text, the
# contract that must break, the import the report must name).
WRONG = [
    (
        "transport/_wrong_upward.py",
        "def replay():\n    from outrider.rollout import worker  # a function-level import reaching up\n\n    return worker\n",
        "layers",
        "outrider.transport._wrong_upward -> outrider.rollout.worker",
    ),
    (
        "train/_wrong_cli.py",
        "def command():\n    from outrider.cli.learn_cmd import learn  # orchestration importing the CLI\n\n    return learn\n",
        "layers",
        "outrider.train._wrong_cli -> outrider.cli.learn_cmd",
    ),
    (
        "learner/_wrong_service.py",
        "from outrider.services.policy import servicer  # the learner reaching into a service\n",
        "layers",
        "outrider.learner._wrong_service -> outrider.services.policy.servicer",
    ),
    (
        "services/curriculum/_wrong_sibling.py",
        "def tasks():\n    from outrider.services.env import servicer  # a service importing another\n\n    return servicer\n",
        "services-independent",
        "outrider.services.curriculum._wrong_sibling -> outrider.services.env.servicer",
    ),
    (
        "learner/algos/_wrong_io.py",
        "import redis  # I/O in the algorithm library\n",
        "algos-pure",
        "outrider.learner.algos._wrong_io -> redis",
    ),
    (
        "services/reward/verifiers/_wrong_builtin.py",
        "from outrider.envs.builtin import code_env  # one built-in environment's internals\n",
        "builtin-envs-are-plugins",
        "outrider.services.reward.verifiers._wrong_builtin -> outrider.envs.builtin.code_env",
    ),
    (
        "rollout/_wrong_stub.py",
        "def stub(channel):\n    from outrider.proto.v1 import policy_pb2_grpc  # a raw stub instead of the client\n\n"
        "    return policy_pb2_grpc.PolicyServiceStub(channel)\n",
        "stubs-behind-clients",
        "outrider.rollout._wrong_stub -> outrider.proto.v1.policy_pb2_grpc",
    ),
    (
        "newlayer/__init__.py",
        '"""A package no layer lists: the exhaustive layers contract refuses it."""\n',
        "layers",
        "outrider.newlayer",
    ),
]


def _contracts() -> dict[str, dict]:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    return {contract["id"]: contract for contract in config["contracts"]}


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    if not LINT_IMPORTS.is_file():
        pytest.fail(f"{LINT_IMPORTS} is missing: import-linter is a dev dependency (pyproject.toml); run `make setup`")
    # cwd first on sys.path (lint-imports puts it there), so `outrider` is the tree under cwd.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(PYPROJECT), "--no-cache"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )


def _copy_package(dest: Path) -> Path:
    """The package's Python files as `dest/outrider`, the mapped folders (symlinks in the
    checkout) copied as real folders, the way an installed wheel lays them out."""

    def python_only(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if n == "__pycache__" or (not n.endswith(".py") and not os.path.isdir(os.path.join(folder, n)))]

    shutil.copytree(REPO_ROOT / "outrider", dest / "outrider", symlinks=False, ignore=python_only)
    return dest / "outrider"


def test_the_repository_keeps_every_import_contract():
    done = _lint(REPO_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    kept = len(_contracts())
    assert re.search(rf"Contracts: {kept} kept, 0 broken", done.stdout), done.stdout


def test_each_contract_fails_on_a_deliberately_wrong_import(tmp_path):
    package = _copy_package(tmp_path)
    clean = _lint(tmp_path)
    assert clean.returncode == 0, "the copy must start clean:\n" + clean.stdout + clean.stderr
    for relative, text, _, _ in WRONG:
        target = package / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    done = _lint(tmp_path)
    report = done.stdout + done.stderr
    assert done.returncode == 1, report
    contracts = _contracts()
    assert re.search(rf"Contracts: 0 kept, {len(contracts)} broken", report), report
    for _, _, contract, named in WRONG:
        assert contracts[contract]["name"] in report, (contract, report)
        assert named in report, (named, report)


def _documented_layers() -> list[str]:
    """The rows of docs/architecture.md's layer table, bottom-up, as contract entries
    (`config | proto`, `transport : serving : models : process`, ...)."""
    text = (REPO_ROOT / "docs" / "architecture.md").read_text()
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not re.match(r"^\| \d+\. ", line):
            continue
        cell = re.split(r"(?<!\\)\|", line)[2]
        names = re.findall(r"`([a-z_]+)`", cell)
        separator = " | " if "\\|" in cell else " : "
        rows.append(separator.join(names))
    return rows


def test_the_documented_layers_are_the_contract():
    layers = _contracts()["layers"]["layers"]
    assert _documented_layers() == list(reversed(layers))

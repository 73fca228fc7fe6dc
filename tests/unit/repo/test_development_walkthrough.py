"""docs/development.md's recipes (Adding an algorithm / an environment / a service),
followed literally in a temporary copy of the repository.

Each recipe's blocks are taken from the page in order: a block whose first line is
`# <path>` is written to that path (a `diff` block is applied: its `-` lines replaced by
its `+` lines, between the ` ` lines), and each line of a `sh` block is run at the copy's
root, with the interpreter running these tests standing in for `.venv/bin/python` (and
`.venv/bin/outrider`) and `make` told so (`PY=...`, `NO_SETUP=1`: a copy has no venv of
its own). Then the test checks what the recipe promises: the generated files name the
new thing, regenerating again changes nothing, and the new thing works.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

# Each recipe starts a handful of interpreters that import torch (the generator, pytest).
pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[3]
DOC = REPO_ROOT / "docs" / "development.md"
COPIED = ("outrider", "learner", "envs", "services", "scripts", "docs", "helm", "Makefile", "pyproject.toml", "tests/conftest.py")
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)


def recipe(title: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced block of the `### {title}` section of docs/development.md."""
    text = DOC.read_text()
    start = text.index(f"\n### {title}\n")
    following = [m.start() for m in re.finditer(r"^#{2,3} ", text[start + 1 :], re.M)][1:]
    section = text[start : start + 1 + following[0]] if following else text[start:]
    blocks = [(m.group(1), m.group(2)) for m in _BLOCK.finditer(section)]
    assert blocks, f"no code blocks under '### {title}' in {DOC}"
    return blocks


def copy_repository(target: Path) -> Path:
    for name in COPIED:
        source, dest = REPO_ROOT / name, target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            # symlinks=True keeps outrider/{learner,envs,services} -> ../<folder> pointing into the copy.
            shutil.copytree(source, dest, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, dest)
    return target


def _environment() -> dict[str, str]:
    # Nothing may reach the real checkout: the copy imports itself from its root.
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def command(line: str) -> list[str]:
    words = shlex.split(line)
    if words[0] == "make":
        return ["make", "-s", *words[1:], "NO_SETUP=1", f"PY={sys.executable}"]
    if words[0] == ".venv/bin/python":
        return [sys.executable, *words[1:]]
    if words[0] == ".venv/bin/outrider":
        return [sys.executable, "-m", "outrider.cli.main", *words[1:]]
    raise AssertionError(f"the recipe runs {words[0]!r}; this test knows make, .venv/bin/python and .venv/bin/outrider")


def run(root: Path, argv: list[str]) -> str:
    done = subprocess.run(argv, cwd=root, env=_environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{shlex.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def apply_diff(path: Path, body: str) -> None:
    """Apply hunks (separated by `@@` lines) of ` `/`-`/`+` lines; each must match once."""
    text = path.read_text()
    for hunk in re.split(r"^@@\n", body, flags=re.M):
        lines = [line for line in hunk.split("\n") if line]
        old = "".join(line[1:] + "\n" for line in lines if line[0] in " -")
        new = "".join(line[1:] + "\n" for line in lines if line[0] in " +")
        assert text.count(old) == 1, f"{path}: the recipe's edit expects exactly one copy of:\n{old}"
        text = text.replace(old, new)
    path.write_text(text)


def follow(root: Path, title: str, before_commands=None) -> None:
    """Do what the recipe says; `before_commands(root)` runs once, before its first command."""
    for language, body in recipe(title):
        first, _, rest = body.partition("\n")
        if language == "sh":
            if before_commands is not None:
                before_commands(root)
                before_commands = None
            for line in body.splitlines():
                if line.strip():
                    run(root, command(line))
            continue
        assert first.startswith("# "), f"'{title}': a {language} block that names no file: {first!r}"
        path = root / first[2:].strip()
        if language == "diff":
            apply_diff(path, rest)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)


def python(root: Path, code: str) -> str:
    return run(root, [sys.executable, "-c", code])


def regenerating_changes_nothing(root: Path) -> None:
    run(root, [sys.executable, "scripts/generate_catalogs.py", "--check"])


def _stale_until_regenerated(root: Path) -> None:
    # The check CI runs (tests/unit/repo/test_generated_catalogs.py) sees the new file.
    done = subprocess.run(
        [sys.executable, "scripts/generate_catalogs.py", "--check", "--no-helm"],
        cwd=root, env=_environment(), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.split("\n")[:3] == [
        "stale: outrider/config/algorithms.json (run `make catalog`)",
        "stale: outrider/config/names.py (run `make catalog`)",
        "stale: docs/algorithms.md (run `make catalog`)",
    ]


def test_adding_an_algorithm(tmp_path):
    root = copy_repository(tmp_path)
    follow(root, "Adding an algorithm", before_commands=_stale_until_regenerated)

    catalog = json.loads((root / "outrider" / "config" / "algorithms.json").read_text())
    assert catalog["advantage"]["centered"]["requires"] == ["group_index"]
    assert [(f["name"], f["default"], f["gt"]) for f in catalog["advantage"]["centered"]["params"]] == [("scale", 1.0, 0.0)]
    doc = (root / "docs" / "algorithms.md").read_text()
    advantages = doc[doc.index("## Advantage estimators") : doc.index("## Policy losses")]
    assert "### `centered`\n* Formula: Group-mean baseline with a fixed scale: A_i = scale·(s_i − mean_g s).\n" in advantages
    assert "* Config: `advantage: centered`; `scale`=1.0. Needs `group_index`." in advantages
    regenerating_changes_nothing(root)
    out = python(
        root,
        "from typing import get_args\n"
        "from outrider.config import ConfigError, parse_config\n"
        "from outrider.config.names import AdvantageEstimatorName\n"
        "assert 'centered' in get_args(AdvantageEstimatorName)\n"
        "try:\n"
        "    parse_config({'learner': {'algorithm': {'advantage': {'name': 'centered', 'params': {'scale': 0}}}}})\n"
        "except ConfigError as exc:\n"
        "    print(exc.problems)\n",
    )
    assert "learner.algorithm.advantage" in out and "centered.scale=0 must be > 0.0" in out


def test_adding_an_environment(tmp_path):
    root = copy_repository(tmp_path)
    follow(root, "Adding an environment")

    names = (root / "outrider" / "config" / "names.py").read_text()
    assert '"reverse-word": "outrider.envs.builtin.reverse_word_env:ReverseWordEnv"' in names
    # New built-ins come after the existing ones: the default `builtin_envs` order is kept.
    assert 'BUILTIN_ENV_NAMES: tuple[str, ...] = ("math", "code", "python-tool", "guess-number", "nim", "reverse-word")' in names
    doc = (root / "docs" / "environments.md").read_text()
    assert "| `reverse-word` | Spell a word backwards; one turn, reward 1 when exact. | — | 1 | — | — |" in doc
    regenerating_changes_nothing(root)


def _first_line_with(process: subprocess.Popen, prefix: str, timeout_s: float) -> str:
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    while True:
        line = lines.get(timeout=timeout_s)
        if line.startswith(prefix) or line == "":
            return line


def test_adding_a_service(tmp_path):
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    root = copy_repository(tmp_path)
    follow(root, "Adding a service")

    template = (root / "helm" / "outrider" / "templates" / "_services.tpl").read_text()
    assert 'define "outrider.services" -}}policy env reward curriculum echo{{- end' in template
    schema = json.loads((root / "helm" / "outrider" / "values.schema.json").read_text())
    assert "echo" in schema["properties"] and "echo" in schema["properties"]["config"]["properties"]
    regenerating_changes_nothing(root)
    out = python(
        root,
        "from outrider.config import CONFIG_KINDS, RunConfig\n"
        "from outrider.services import SERVICE_MAIN_MODULES, available_services\n"
        "print(RunConfig().stack.services, SERVICE_MAIN_MODULES['echo'], 'echo' in available_services(), CONFIG_KINDS['echo'].__name__)\n",
    )
    assert out.split("\n")[0] == "['policy', 'env', 'reward', 'curriculum', 'echo'] outrider.services.echo.main True EchoServiceConfig"

    serve = [sys.executable, "-m", "outrider.cli.main", "serve", "echo", "--config", "my_echo.yaml"]
    process = subprocess.Popen(serve, cwd=root, env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = _first_line_with(process, "OUTRIDER_READY", timeout_s=120)
        assert ready.startswith("OUTRIDER_READY service=echo "), f"no READY line; stderr:\n{process.stderr.read() if ready == '' else ''}"
        port = int(dict(part.split("=", 1) for part in ready.split()[1:])["port"])
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

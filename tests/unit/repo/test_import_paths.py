"""From an import to its file: the folders services/, envs/ and learner/ are the packages
outrider.services, outrider.envs and outrider.learner, for Python and for static tools.

Static analysers (pyright, mypy, jedi) ask the interpreter for its sys.path and then look
for files there; they run no import hooks. `static_origin` does the same. Inside the
checkout the repository root comes first, and `outrider/` must hold the whole package:
the relative symlinks outrider/{services,envs,learner}. Anywhere else the editable
install must be one such tools can follow (setuptools' strict mode: a .pth file naming a
link tree; scripts/bootstrap.sh).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
MAPPED = {"outrider.learner": "learner", "outrider.services": "services", "outrider.envs": "envs"}


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _interpreter_path(cwd: Path) -> list[Path]:
    """sys.path as the interpreter reports it to a static tool started outside the repository."""
    done = _python("import json, sys; print(json.dumps(sys.path))", cwd)
    assert done.returncode == 0, done.stderr
    return [Path(p) for p in json.loads(done.stdout) if p and Path(p).is_dir() and Path(p).resolve() != cwd.resolve()]


def static_origin(module: str, search_path: list[Path]) -> Path | None:
    """The file a filesystem-only resolver finds for `module`: like Python and jedi, it
    takes the top-level package from the first entry that has it and looks only there."""
    top, *rest = module.split(".")
    for root in search_path:
        if (root / top / "__init__.py").is_file():
            base = root.joinpath(top, *rest)
            for candidate in (base / "__init__.py", base.with_suffix(".py")):
                if candidate.is_file():
                    return candidate
            return None
    return None


@pytest.mark.parametrize("bare", ["learner", "services", "envs", "learner.loop"])
def test_bare_folder_imports_fail_naming_the_import_to_use(bare):
    done = _python(f"import {bare}", REPO_ROOT)  # the repository root is sys.path[0] here
    package = bare.split(".")[0]
    assert done.returncode != 0
    assert f"ImportError: import outrider.{package}, not {package}:" in done.stderr, done.stderr


def test_bare_module_run_fails_too():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-m", "learner.main"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "import outrider.learner, not learner" in done.stderr, done.stderr


def test_outrider_imports_resolve_to_the_repository_files_from_anywhere(tmp_path):
    code = (
        "import importlib.util, json, outrider.learner, outrider.services.policy, outrider.envs\n"
        "names = ['outrider.learner.loop', 'outrider.services.policy.servicer', 'outrider.envs.interface']\n"
        "print(json.dumps({n: importlib.util.find_spec(n).origin for n in names}))\n"
    )
    done = _python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    origins = json.loads(done.stdout.splitlines()[-1])
    assert {name: os.path.realpath(origin) for name, origin in origins.items()} == {
        "outrider.learner.loop": str(REPO_ROOT / "learner" / "loop.py"),
        "outrider.services.policy.servicer": str(REPO_ROOT / "services" / "policy" / "servicer.py"),
        "outrider.envs.interface": str(REPO_ROOT / "envs" / "interface.py"),
    }


def test_a_static_tool_finds_the_mapped_packages_on_the_interpreters_path(tmp_path):
    search = _interpreter_path(tmp_path)
    for module, expected in [
        ("outrider.learner.loop", REPO_ROOT / "learner" / "loop.py"),
        ("outrider.services.policy.servicer", REPO_ROOT / "services" / "policy" / "servicer.py"),
        ("outrider.envs", REPO_ROOT / "envs" / "__init__.py"),
        ("outrider.config.run", REPO_ROOT / "outrider" / "config" / "run.py"),
    ]:
        found = static_origin(module, search)
        assert found is not None, (
            f"{module}: no file on the interpreter's sys.path; the editable install uses an import "
            "hook static tools cannot follow. Run `make setup` (strict editable mode)."
        )
        assert found.resolve() == expected


@pytest.mark.parametrize("package", sorted(MAPPED))
def test_the_checkout_links_each_mapped_folder_into_outrider(package):
    link = REPO_ROOT / "outrider" / package.split(".")[1]
    assert link.is_symlink() and os.readlink(link) == f"../{MAPPED[package]}"  # relative: any clone path works


def test_a_static_tool_inside_the_checkout_finds_the_repository_files():
    """An editor's view: the workspace root first, then the interpreter's path (jedi's and
    pyright's order); a partial `outrider/` there would hide the installed one."""
    search = [REPO_ROOT, *_interpreter_path(REPO_ROOT / "tests")]
    for module, expected in [
        ("outrider.learner.loop", REPO_ROOT / "learner" / "loop.py"),
        ("outrider.services.policy.servicer", REPO_ROOT / "services" / "policy" / "servicer.py"),
        ("outrider.envs.interface", REPO_ROOT / "envs" / "interface.py"),
    ]:
        found = static_origin(module, search)
        assert found is not None and found.parent.is_relative_to(REPO_ROOT / "outrider"), (module, found)
        assert found.resolve() == expected


def _modules_on_disk() -> dict[str, Path]:
    modules = {}
    for package, folder in {"outrider": "outrider", **MAPPED}.items():
        for path in (REPO_ROOT / folder).rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            rel = path.relative_to(REPO_ROOT / folder).with_suffix("")
            parts = [] if rel.parts == ("__init__",) else [p for p in rel.parts if p != "__init__"]
            if all(p.isidentifier() for p in parts):
                modules[".".join([package, *parts])] = path
    return modules


def test_the_link_tree_has_every_module(tmp_path):
    """Strict mode links files, not folders: a module added since the last `make setup` is
    invisible to Python and to static tools until the tree is re-linked."""
    search = _interpreter_path(tmp_path)
    missing = [name for name, path in _modules_on_disk().items() if (found := static_origin(name, search)) is None or found.resolve() != path]
    assert not missing, f"not (or wrongly) linked, run `make setup` to re-link: {sorted(missing)[:20]}"

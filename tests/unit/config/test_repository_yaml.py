"""Every YAML file in the repository is loaded and validated.

A new kind of YAML file must get a validator here: unknown files fail the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from outrider.config import RunConfig, load_config, parse_model

REPO_ROOT = Path(__file__).resolve().parents[3]
SKIPPED_DIRS = {".venv", ".git", "runs", "node_modules", ".pytest_cache"}
# Go templates, checked by rendering them (tests/integration/deploy).
TEMPLATE_DIRS = {REPO_ROOT / "helm" / "outrider" / "templates"}


def _yaml_files() -> list[Path]:
    files = []
    for path in sorted(REPO_ROOT.rglob("*.y*ml")):
        relative = path.relative_to(REPO_ROOT)
        if set(relative.parts) & SKIPPED_DIRS or any(d in path.parents for d in TEMPLATE_DIRS):
            continue
        files.append(path)
    return files


def _validate_helm_values(path: Path) -> None:
    values = yaml.safe_load(path.read_text())
    parse_model(RunConfig, values.get("config", {}), source=f"{path}:config")


def _validate_chart(path: Path) -> None:
    chart = yaml.safe_load(path.read_text())
    assert {"apiVersion", "name", "version"} <= set(chart), f"{path}: Chart.yaml lacks required keys"


def _validator(path: Path):
    relative = path.relative_to(REPO_ROOT).as_posix()
    if relative.startswith("helm/") and path.name.startswith("values"):
        return _validate_helm_values
    if relative.startswith("helm/") and path.name == "Chart.yaml":
        return _validate_chart
    if relative.startswith("examples/envs/"):
        from outrider.envs.spec import load_spec_file

        return load_spec_file
    if relative.startswith("examples/experiments/") and path.parent.name == "experiments":
        from outrider.experiment.recipe import load_recipe

        return load_recipe  # every scale × arm expanded and validated
    data = yaml.safe_load(path.read_text())
    if isinstance(data, dict) and "kind" in data:
        return load_config
    return None


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_yaml_file_is_valid(path: Path):
    validate = _validator(path)
    assert validate is not None, f"no validator knows {path}; add one to this test"
    validate(path)


def test_the_repository_has_yaml_files_to_check():
    names = {p.relative_to(REPO_ROOT).as_posix() for p in _yaml_files()}
    assert "helm/outrider/values.yaml" in names

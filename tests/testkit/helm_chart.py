"""Rendering the Helm chart in tests: the helm binary, `helm template` into documents, and
the pieces tests look at (workload pod templates, the rendered run config)."""

from __future__ import annotations

import base64
import functools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "helm" / "outrider"
HELM = shutil.which("helm") or str(Path(sys.executable).parent / "helm")
KUBE_VALIDATE = str(Path(sys.executable).parent / "kubernetes-validate")

needs_helm = pytest.mark.skipif(not Path(HELM).exists(), reason="helm binary not installed (scripts/bootstrap.sh fetches it)")


def helm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120)


def template_args(sets: tuple[str, ...] = (), values: Path | None = None) -> list[str]:
    args = ["template", "rel", str(CHART)]
    if values is not None:
        args += ["--values", str(values)]
    for item in sets:
        args += ["--set", item]
    return args


# libyaml when present: the pure-Python parser takes ~0.5 s a rendering.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=64)
def _rendered(sets: tuple[str, ...], values: Path | None, values_text: str | None) -> str:
    result = helm(*template_args(sets, values))
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(*sets: str, values: Path | None = None) -> list[dict]:
    """`helm template rel CHART` with `--set`s (and a values file): its documents (fresh
    objects each call; the rendering is cached per arguments and values file content)."""
    text = _rendered(sets, values, values.read_text() if values is not None else None)
    return [doc for doc in yaml.load_all(text, Loader=_LOADER) if doc]


def render_error(*sets: str, values: Path | None = None) -> str:
    """What `helm template` says when it refuses the values (it must refuse them)."""
    result = helm(*template_args(sets, values))
    assert result.returncode != 0, "helm template accepted the values"
    return result.stderr


def pods(documents: list[dict]) -> dict[str, dict]:
    """component -> pod template (metadata and spec) of every workload."""
    found = {}
    for doc in documents:
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            template = doc["spec"]["template"]
            found[template["metadata"]["labels"]["app.kubernetes.io/component"]] = template
    return found


def one(documents: list[dict], kind: str, name: str | None = None) -> dict:
    matching = [d for d in documents if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(matching) == 1, f"{len(matching)} {kind} {name or ''}"
    return matching[0]


def run_config_data(documents: list[dict]) -> dict:
    """The run config of the chart's ConfigMap, as parsed YAML."""
    return yaml.safe_load(one(documents, "ConfigMap")["data"]["outrider.yaml"])


def secret_values(secret: dict) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def load_run_config(documents: list[dict], redis_password: str = "test-password"):
    """The ConfigMap's run config loaded with the project's models, as a pod loads it: with
    OUTRIDER_REDIS_PASSWORD (from the Redis Secret) set for the URLs that name it."""
    import os
    from unittest import mock

    from outrider.config import RunConfig, parse_model

    with mock.patch.dict(os.environ, {"OUTRIDER_REDIS_PASSWORD": redis_password}):
        return parse_model(RunConfig, run_config_data(documents), source="configmap")

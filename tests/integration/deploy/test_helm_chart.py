"""The Helm chart lints, renders to manifests that pass the official
Kubernetes schemas (offline, --strict), and carries a valid run config.

No Kubernetes API server can run here, so nothing is applied; rendering and
schema validation are what can be checked for real.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from outrider.config import RunConfig, parse_model
from outrider.config.helm_schema import main as schema_main

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART = REPO_ROOT / "helm" / "outrider"
HELM = shutil.which("helm") or str(Path(sys.executable).parent / "helm")
KUBE_VALIDATE = str(Path(sys.executable).parent / "kubernetes-validate")

needs_helm = pytest.mark.skipif(not Path(HELM).exists(), reason="helm binary not installed (scripts/bootstrap.sh fetches it)")


def _helm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120)


def _render(*sets: str) -> list[dict]:
    args = ["template", "rel", str(CHART)]
    for item in sets:
        args += ["--set", item]
    result = _helm(*args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_values_schema_is_generated_from_the_config_models():
    assert schema_main(["--check"]) == 0, "run `python -m outrider.config.helm_schema`"


@needs_helm
def test_chart_lints():
    result = _helm("lint", str(CHART), "--strict")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_helm
@pytest.mark.parametrize(
    "sets",
    [
        (),
        ("redis.enabled=false", "redis.externalUrl=redis://redis.example:6379/0", "learner.nodes=4"),
        ("env.runtimeClassName=gvisor", "gvisor.createRuntimeClass=true", "rolloutWorkers.autoscaling.enabled=false"),
    ],
    ids=["defaults", "external-redis-4-nodes", "gvisor-fixed-workers"],
)
def test_rendered_manifests_pass_kubernetes_schemas(sets, tmp_path):
    documents = _render(*sets)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all(documents))
    result = subprocess.run(
        [KUBE_VALIDATE, "-k", "1.31.0", "--strict", str(manifest)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in documents}
    for service in ("policy", "env", "reward", "curriculum"):
        assert ("Deployment", f"rel-outrider-{service}") in kinds
        assert ("Service", f"rel-outrider-{service}") in kinds
    assert ("StatefulSet", "rel-outrider-learner") in kinds
    assert ("Job", "rel-outrider-train") in kinds


@needs_helm
def test_rendered_run_config_is_valid_and_points_at_the_cluster_services():
    (config_map,) = [d for d in _render("redis.enabled=false", "redis.externalUrl=redis://r:6379/0") if d["kind"] == "ConfigMap"]
    run = parse_model(RunConfig, yaml.safe_load(config_map["data"]["outrider.yaml"]), source="configmap")
    assert run.stack.mode == "cluster"
    assert run.stack.addresses == {s: f"rel-outrider-{s}:50051" for s in ("policy", "env", "reward", "curriculum")}
    assert run.redis.url == "redis://r:6379/0" and run.curriculum.redis.url == "redis://r:6379/0"
    assert run.policy.server.host == "0.0.0.0" and run.policy.server.metrics_port == 9090
    from outrider.train.preflight import preflight

    preflight(run, "configmap")  # what `outrider train` checks before dispatching


@needs_helm
def test_bad_config_values_are_refused_with_the_field_path():
    result = _helm("template", "rel", str(CHART), "--set", "config.bus.max_len=0")
    assert result.returncode != 0 and "/config/bus/max_len" in result.stderr
    result = _helm("template", "rel", str(CHART), "--set", "config.bogus=1")
    assert result.returncode != 0 and "'bogus' not allowed" in result.stderr
    result = _helm("template", "rel", str(CHART), "--set", "redis.enabled=false")
    assert result.returncode != 0 and "redis.externalUrl is required" in result.stderr

"""Rollout workers scale on the backlog of queued rollouts (issue 18): a KEDA ScaledObject
on the Celery queue's Redis list, or an HPA on an external metric; both off by default.

kubernetes-validate ships only the core Kubernetes schemas, not KEDA's CRDs (ScaledObject,
TriggerAuthentication), so their structure is checked here field by field; the HPA is a core
kind and is validated with --strict. The list name is checked against Celery itself: tasks
sent through the workers' own Celery app land in the list the ScaledObject watches."""

from __future__ import annotations

import subprocess

import yaml
from typer.testing import CliRunner

from outrider.cli.main import app as cli
from outrider.config import RedisConfig, RunConfig
from outrider.transport.embedded import open_redis
from testkit.helm_chart import KUBE_VALIDATE, needs_helm, one, render, render_error

KEDA = "rolloutWorkers.autoscaling.keda.enabled=true"
HPA = "rolloutWorkers.autoscaling.hpa.enabled=true"
WORKERS = "rel-outrider-rollout-workers"


def _autoscalers(documents: list[dict]) -> list[str]:
    return sorted(d["kind"] for d in documents if d["kind"] in ("ScaledObject", "TriggerAuthentication", "HorizontalPodAutoscaler"))


def _target_matches_the_workers(documents: list[dict], ref: dict) -> None:
    deployment = one(documents, "Deployment", WORKERS)
    assert ref == {"apiVersion": deployment["apiVersion"], "kind": "Deployment", "name": deployment["metadata"]["name"]}
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count


@needs_helm
def test_by_default_the_workers_run_a_fixed_count():
    documents = render()
    assert _autoscalers(documents) == []
    assert one(documents, "Deployment", WORKERS)["spec"]["replicas"] == 2


@needs_helm
def test_keda_scales_the_workers_on_the_celery_queue_with_the_redis_secret():
    documents = render(KEDA)
    assert _autoscalers(documents) == ["ScaledObject", "TriggerAuthentication"]
    scaled = one(documents, "ScaledObject", WORKERS)
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    _target_matches_the_workers(documents, spec["scaleTargetRef"])
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["pollingInterval"], spec["cooldownPeriod"]) == (2, 16, 15, 300)
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"] == {
        "address": "rel-outrider-redis:6379",
        "databaseIndex": "0",
        "listName": "outrider:celery:outrider-rollouts",  # config.name "outrider" + the queue
        "listLength": "4",
        "activationListLength": "0",
        "enableTLS": "false",
    }
    # KEDA takes trigger metadata as strings only.
    assert all(isinstance(value, str) for value in trigger["metadata"].values())
    auth = one(documents, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert auth["apiVersion"] == "keda.sh/v1alpha1"
    assert auth["spec"] == {"secretTargetRef": [{"parameter": "password", "name": "rel-outrider-redis-auth", "key": "password"}]}
    one(documents, "Secret", "rel-outrider-redis-auth")
    # The KEDA operator (namespace keda) may read Redis; nothing else new may.
    redis_policy = one(documents, "NetworkPolicy", "rel-outrider-redis")
    operator = {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}},
                          "podSelector": {"matchLabels": {"app": "keda-operator"}}}],
                "ports": [{"protocol": "TCP", "port": 6379}]}
    assert operator in redis_policy["spec"]["ingress"]
    assert operator not in one(render(), "NetworkPolicy", "rel-outrider-redis")["spec"]["ingress"]
    assert all(p["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == "redis" or operator not in p["spec"].get("ingress", [])
               for p in documents if p["kind"] == "NetworkPolicy")


@needs_helm
def test_keda_follows_the_run_name_an_external_redis_and_its_tls():
    documents = render(KEDA, "config.name=run7", "redis.enabled=false", "redis.externalUrl=rediss://cache.example:6380/2",
                       "redis.auth.existingSecret=cache-pw", "redis.auth.existingSecretKey=pw")
    (trigger,) = one(documents, "ScaledObject", WORKERS)["spec"]["triggers"]
    assert {k: trigger["metadata"][k] for k in ("address", "databaseIndex", "listName", "enableTLS")} == {
        "address": "cache.example:6380", "databaseIndex": "2", "listName": "run7:celery:outrider-rollouts", "enableTLS": "true"}
    auth = one(documents, "TriggerAuthentication")
    assert auth["spec"]["secretTargetRef"] == [{"parameter": "password", "name": "cache-pw", "key": "pw"}]
    # Without a Redis password there is nothing to authenticate with.
    documents = render(KEDA, "redis.auth.enabled=false")
    assert _autoscalers(documents) == ["ScaledObject"]
    assert "authenticationRef" not in one(documents, "ScaledObject")["spec"]["triggers"][0]


@needs_helm
def test_without_keda_an_hpa_follows_an_external_backlog_metric(tmp_path):
    documents = render(HPA, "rolloutWorkers.autoscaling.maxReplicas=40", "rolloutWorkers.autoscaling.targetBacklogPerReplica=6",
                       "rolloutWorkers.autoscaling.hpa.metricSelector.matchLabels.run=outrider")
    assert _autoscalers(documents) == ["HorizontalPodAutoscaler"]
    hpa = one(documents, "HorizontalPodAutoscaler", WORKERS)
    assert hpa["apiVersion"] == "autoscaling/v2"
    _target_matches_the_workers(documents, hpa["spec"]["scaleTargetRef"])
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 40)
    assert hpa["spec"]["metrics"] == [{"type": "External", "external": {
        "metric": {"name": "outrider_rollout_backlog", "selector": {"matchLabels": {"run": "outrider"}}},
        "target": {"type": "AverageValue", "averageValue": "6"}}}]
    manifest = tmp_path / "hpa.yaml"
    manifest.write_text(yaml.safe_dump(hpa))
    result = subprocess.run([KUBE_VALIDATE, "-k", "1.31.0", "--strict", str(manifest)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    # Both on: KEDA (it makes its own HPA; two would fight over the replica count).
    assert _autoscalers(render(KEDA, HPA)) == ["ScaledObject", "TriggerAuthentication"]


@needs_helm
def test_bad_autoscaling_values_are_refused():
    assert "minReplicas 9 exceeds maxReplicas 3" in render_error(KEDA, "rolloutWorkers.autoscaling.minReplicas=9",
                                                                 "rolloutWorkers.autoscaling.maxReplicas=3")
    assert "/rolloutWorkers/autoscaling/targetBacklogPerReplica" in render_error("rolloutWorkers.autoscaling.targetBacklogPerReplica=0")
    assert "'enabled' not allowed" in render_error("rolloutWorkers.autoscaling.enabled=true")  # the old CPU HPA is gone


def test_deploy_check_names_the_autoscaler(tmp_path):
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump({"rolloutWorkers": {"autoscaling": {"keda": {"enabled": True}, "maxReplicas": 32}}}))
    result = CliRunner().invoke(cli, ["deploy", "check", str(path)])
    assert result.exit_code == 0, result.output
    (row,) = [line for line in result.output.splitlines() if line.startswith("rollout-workers")]
    assert "2-32 (KEDA: 4 queued rollouts a pod)" in row


@needs_helm
def test_the_watched_list_is_where_the_workers_celery_app_queues_rollouts():
    (trigger,) = one(render(KEDA, "config.name=run7"), "ScaledObject")["spec"]["triggers"]
    handle = open_redis(RedisConfig())  # an embedded valkey-server on loopback
    try:
        from outrider.rollout.worker import TASK_NAME, make_app

        app = make_app(RunConfig(name="run7", redis={"url": handle.url}))
        for group in range(3):
            app.send_task(TASK_NAME, args=[f"group-{group}"])
        client = handle.client()
        assert client.llen(trigger["metadata"]["listName"]) == 3
        assert client.type(trigger["metadata"]["listName"]) == b"list"
    finally:
        handle.close()

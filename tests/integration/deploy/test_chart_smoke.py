"""The rendered chart, run: every pod of `helm template` started as local processes, each in
its own network namespace and address, and a short training run to completion through them
(issue 18, item 6).

Everything the pods run comes from the rendered manifests (tests/testkit/chart_pods.py):
command and args over the image's entrypoint, env (Secret and ConfigMap references
resolved), the ConfigMap and Secrets as files at their mount paths, emptyDirs and claims,
uid/gid/fsGroup, no capabilities, no_new_privs and a read-only root filesystem; names resolve
as the Services would resolve them. So the chart's commands, ports, config, service names,
Secrets and securityContext are proven to work together, which rendering and schema checks
cannot show. What stands in for what a cluster has: the images (this checkout's virtualenv
for the Outrider image, Debian's redis-server for redis, each with its entrypoint), the
toy environment's module on the image's path (its spec comes the chart's way, `envSpecs`:
a file of the ConfigMap), and Service names resolving to the pods' addresses (no ClusterIP).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest
import yaml

from testkit.chart_cluster import Cluster, netns_usable
from testkit.chart_pods import Image, hosts_entries, plan_pods
from testkit.helm_chart import CHART, REPO_ROOT, needs_helm, one, pods, render
from testkit.toy_env import SPEC

pytestmark = needs_helm

MAX_STEPS = 2
GROUPS_PER_STEP = 2

# A CPU run of the tiny model on the toy task, one replica of everything: what a user would
# put in values.yaml, with the chart filling in addresses, ports, Redis and auth.
VALUES = {
    "config": {
        "name": "smoke",
        "policy": {"backend": "hf", "model": "tiny-random-chars", "dtype": "float32"},
        "env": {"builtin_envs": []},
        "curriculum": {"strategy": {"type": "uniform"}},
        "rollout": {"envs": ["vowels"], "group_size": 4, "workers": 1, "sampling": {"max_tokens": 16},
                    "max_episode_tokens": 128},
        "learner": {"model": "tiny-random-chars", "ranks": 1, "groups_per_step": GROUPS_PER_STEP,
                    "max_steps": MAX_STEPS, "max_policy_lag": 2, "optimizer": {"lr": 1e-3},
                    "engine": {"micro_batch_tokens": 2048}},
        "evaluation": {"enabled": False},
    },
    "env": {"replicas": 1},
    # Registered by the env pod from the ConfigMap (test_chart_env_specs.py).
    "envSpecs": {"vowels": {k: v for k, v in yaml.safe_load(SPEC).items() if k != "name"}},
    "rolloutWorkers": {"concurrency": 1, "replicas": 1},
}

VENV_BIN = Path(sys.executable).parent
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _outrider_image() -> Image:
    """The Dockerfile's image: this checkout installed in the virtualenv, WORKDIR the
    repository, its ENV; for this CPU test DeepSpeed's CPU accelerator and the tests folder
    on the path (the toy environment's module). The checkout (and its virtualenv) is pinned
    at its own path, so that the stand-in finds itself when the clone lives under /tmp."""
    return Image(
        entrypoint=["outrider"],
        workdir=str(REPO_ROOT),
        env={"PATH": f"{VENV_BIN}:{SYSTEM_PATH}", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
             "TRANSFORMERS_OFFLINE": "1", "TORCH_EXTENSIONS_DIR": "/opt/torch_extensions",
             "OUTRIDER_CACHE": "/opt/outrider-cache", "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(REPO_ROOT / "tests")},
        pinned={str(folder): folder for folder in _pinned_folders()},
    )


def _pinned_folders() -> list[Path]:
    """The checkout and the virtualenv's prefix (when outside it), outermost only."""
    folders = [REPO_ROOT, Path(sys.prefix)]
    return [f for f in folders if not any(f != other and f.is_relative_to(other) for other in folders)]


# The official redis image: ENTRYPOINT docker-entrypoint.sh (which puts redis-server in front
# of arguments that are options), CMD redis-server, WORKDIR /data.
REDIS_IMAGE = Image(
    entrypoint=["sh", "-c", 'case "$1" in -*|*.conf) set -- redis-server "$@" ;; esac; exec "$@"', "docker-entrypoint.sh"],
    cmd=["redis-server"], workdir="/data", env={"PATH": SYSTEM_PATH},
)


@pytest.fixture
def cluster_root(tmp_path):
    missing = netns_usable()
    if missing:
        pytest.skip(missing)
    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server on PATH (Debian's redis-server package) for the chart's Redis pod")
    root = tmp_path / "cluster"
    root.mkdir()
    return root


def _redis_only(documents: list[dict]) -> list[dict]:
    keep = {"StatefulSet": "rel-outrider-redis", "Service": "rel-outrider-redis", "Secret": "rel-outrider-redis-auth"}
    return [d for d in documents if keep.get(d["kind"]) == d["metadata"]["name"]]


def test_the_redis_pod_serves_with_the_secrets_password_and_wrong_probes_fail(cluster_root):
    """Seconds, not minutes: the chart's Redis pod alone, its probes run as the kubelet
    would; the same pod with probes at a port it does not serve fails them (so a passing
    probe in the training test means something)."""
    documents = _redis_only(render())
    (statefulset,) = [d for d in documents if d["kind"] == "StatefulSet"]
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["exec"]["command"] == ["redis-cli", "ping"]
    broken = json.loads(json.dumps(statefulset))
    probes = broken["spec"]["template"]["spec"]["containers"][0]
    probes["readinessProbe"]["exec"]["command"] = ["redis-cli", "-p", "6380", "ping"]
    probes["livenessProbe"]["tcpSocket"]["port"] = 6380
    wrong = [broken if d is statefulset else d for d in documents]
    for manifests, expected in ((documents, set()), (wrong, {"readinessProbe", "livenessProbe"})):
        root = cluster_root / ("wrong" if expected else "right")
        root.mkdir()
        pods = plan_pods(manifests, root, lambda reference: REDIS_IMAGE)
        cluster = Cluster(pods, hosts_entries(manifests, pods), root)
        try:
            cluster.start()
            redis = cluster.find("redis")
            deadline = time.monotonic() + 30
            while "Ready to accept connections" not in redis.log.read_text():
                assert redis.process.poll() is None and time.monotonic() < deadline, redis.log.read_text()
                time.sleep(0.2)
            failing = cluster.failing_probes()
            # The password from the Secret is required: redis-cli without REDISCLI_AUTH is refused.
            without = {k: v for k, v in redis.container.env.items() if k != "REDISCLI_AUTH"}
            refused = cluster.exec(redis, ["redis-cli", "ping"], "no-password", env=without)
            answered = cluster.exec(redis, ["redis-cli", "ping"], "password")
        finally:
            cluster.stop()
        assert {label.rpartition(" ")[2] for label in failing} == expected, failing
        if not expected:
            assert "NOAUTH" in refused.stdout + refused.stderr, refused
            assert answered.stdout.strip() == "PONG", answered


@pytest.mark.slow
def test_the_rendered_chart_trains_to_completion(cluster_root, tmp_path):
    started = time.monotonic()
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(VALUES))
    documents = render(values=values)
    repository = yaml.safe_load((CHART / "values.yaml").read_text())["image"]["repository"]

    def image_for(reference: str) -> Image:
        name = reference.rpartition(":")[0]
        if name == repository:
            return _outrider_image()
        if name.rpartition("/")[2] == "redis":
            return REDIS_IMAGE
        raise AssertionError(f"no local stand-in for the image {reference}")

    pods = plan_pods(documents, cluster_root, image_for)
    components = sorted(p.labels["app.kubernetes.io/component"] for p in pods)
    assert components == sorted(["policy", "env", "reward", "curriculum", "rollout-workers", "learner", "train", "redis"])
    cluster = Cluster(pods, hosts_entries(documents, pods), cluster_root)
    try:
        cluster.start()
        train = cluster.find("train")
        # The learner's StatefulSet pod ends by itself once it has trained max_steps.
        code = cluster.wait(train, timeout=600, may_exit=lambda r: r is cluster.find("learner") and r.process.returncode == 0)
        output = train.log.read_text()
        assert code == 0, cluster.logs()
        still_up = {r.pod.labels["app.kubernetes.io/component"] for r in cluster.running if r.process.poll() is None}
        assert still_up >= {"policy", "env", "reward", "curriculum", "rollout-workers", "redis"}, cluster.logs()
        # The probes the kubelet would run pass: the services' gRPC health on the probed
        # port (open without a token), redis-cli with the password from the Secret.
        probed = [f"{r.pod.name} {kind}" for r in cluster.running for kind in r.container.probes]
        assert len(probed) == 3 * 5, probed
        assert cluster.failing_probes() == {}
    finally:
        cluster.stop()
    elapsed = time.monotonic() - started

    # The shared claim holds the run the train Job and the learner wrote (output_dir /data/runs).
    run_dir = cluster_root / "claims" / "rel-outrider-shared" / "runs" / "smoke"
    from outrider.learner.checkpoint import read_state

    state = read_state(run_dir / "checkpoints")
    assert state is not None and state.step == MAX_STEPS, output[-3000:]
    assert len(state.trained_group_ids) == MAX_STEPS * GROUPS_PER_STEP
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert steps == list(range(1, MAX_STEPS + 1))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["ledger"]["lost"] == 0 and summary["ledger"]["trained_twice"] == 0
    assert summary["ledger"]["trained"] == MAX_STEPS * GROUPS_PER_STEP
    # Written by the pods' user (podSecurity.runAsUser), not root.
    assert (run_dir / "summary.json").stat().st_uid == 10001
    # The bus went through the chart's Redis, which kept it in its append-only file on its claim.
    redis_data = cluster_root / "claims" / "data-rel-outrider-redis-0"
    assert any(path.stat().st_size > 0 for path in redis_data.rglob("*.aof")), list(redis_data.rglob("*"))
    print(f"chart smoke run: {elapsed:.0f} s")


def test_services_not_given_the_redis_password_start_from_their_own_section(tmp_path, monkeypatch):
    """The first bug this smoke test found: the env and reward pods are (rightly) not given
    OUTRIDER_REDIS_PASSWORD, but the run config they load names it in `redis.url`, and
    refusing the whole file stopped them at start. A service reads its own section; one that
    names the variable itself still needs it."""
    from outrider.config import ConfigError, load_service_config

    documents = render()
    config = tmp_path / "outrider.yaml"
    config.write_text(one(documents, "ConfigMap")["data"]["outrider.yaml"])
    given = {component: {e["name"] for e in template["spec"]["containers"][0].get("env", [])}
             for component, template in pods(documents).items()}
    monkeypatch.delenv("OUTRIDER_REDIS_PASSWORD", raising=False)
    for service in ("env", "reward"):
        assert "OUTRIDER_REDIS_PASSWORD" not in given[service]
        loaded = load_service_config(service, config)
        assert (loaded.kind, loaded.server.port) == (service, 50051)
    for service in ("policy", "curriculum"):
        assert "OUTRIDER_REDIS_PASSWORD" in given[service]
        with pytest.raises(ConfigError, match="OUTRIDER_REDIS_PASSWORD, which is not set"):
            load_service_config(service, config)
    monkeypatch.setenv("OUTRIDER_REDIS_PASSWORD", "s3cret")
    assert load_service_config("curriculum", config).redis.url == "redis://:s3cret@rel-outrider-redis:6379/0"

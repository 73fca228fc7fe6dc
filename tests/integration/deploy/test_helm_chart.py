"""The Helm chart lints, renders to manifests that pass the official
Kubernetes schemas (offline, --strict), and carries a valid run config.

No Kubernetes API server can run here, so nothing is applied; rendering and
schema validation are what can be checked for real.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
import yaml

from outrider.config import RunConfig, parse_model
from outrider.config.helm_schema import main as schema_main
from testkit.helm_chart import CHART, KUBE_VALIDATE, load_run_config, needs_helm
from testkit.helm_chart import helm as _helm
from testkit.helm_chart import render as _render

# A GPU cluster: 4 learner nodes of 8 GPUs on tainted, labelled GPU nodes, one learner per
# node, policy replicas on their own GPU nodes, both above batch work in priority.
GPU_MULTI_NODE = {
    "learner": {
        "nodes": 4,
        "gpusPerNode": 8,
        "resources": {
            "requests": {"cpu": "32", "memory": "512Gi", "nvidia.com/gpu": 8},
            "limits": {"cpu": "64", "memory": "1Ti", "nvidia.com/gpu": 8},
        },
        "priorityClassName": "training-high",
        "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app.kubernetes.io/component": "learner"}},
                     "topologyKey": "kubernetes.io/hostname"}
                ]
            }
        },
    },
    "policy": {
        "replicas": 4,
        "priorityClassName": "inference",
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
    },
    "rolloutWorkers": {"autoscaling": {"maxReplicas": 64}},
}

# What a platform team with Pod Security "restricted" asks for: gVisor for the pods running
# model-written code (no seccomp/AppArmor/procMount exception), its own uid, its Prometheus.
HARDENED = {
    "env": {"sandbox": "gvisor", "runtimeClassName": "gvisor"},
    "gvisor": {"createRuntimeClass": True},
    "podSecurity": {"runAsUser": 20000, "runAsGroup": 20000, "fsGroup": 20000},
    "networkPolicy": {
        "metrics": {
            "namespaceSelector": {"matchLabels": {"team": "observability"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }
    },
}

VALUE_SETS = {"defaults": None, "gpu-multi-node": GPU_MULTI_NODE, "hardened": HARDENED}


def _values_file(tmp_path: Path, values: dict | None) -> Path | None:
    if values is None:
        return None
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_values_schema_is_generated_from_the_config_models():
    assert schema_main(["--check"]) == 0, "run `python -m outrider.config.helm_schema`"


@needs_helm
@pytest.mark.parametrize("values", list(VALUE_SETS.values()), ids=list(VALUE_SETS))
def test_chart_lints(values, tmp_path):
    path = _values_file(tmp_path, values)
    result = _helm("lint", str(CHART), "--strict", *(["--values", str(path)] if path else []))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_helm
@pytest.mark.parametrize(
    ("sets", "values"),
    [
        ((), None),
        (("redis.enabled=false", "redis.externalUrl=redis://redis.example:6379/0", "learner.nodes=4"), None),
        (("env.runtimeClassName=gvisor", "gvisor.createRuntimeClass=true", "rolloutWorkers.autoscaling.hpa.enabled=true"), None),
        ((), GPU_MULTI_NODE),
        ((), HARDENED),
    ],
    ids=["defaults", "external-redis-4-nodes", "gvisor-backlog-hpa", "gpu-multi-node", "hardened"],
)
def test_rendered_manifests_pass_kubernetes_schemas(sets, values, tmp_path):
    documents = _render(*sets, values=_values_file(tmp_path, values))
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


def _workloads(documents: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in documents
            if d["kind"] in ("Deployment", "StatefulSet", "Job")}


@needs_helm
def test_services_authenticate_with_the_charts_tokens_and_each_pod_gets_its_role():
    documents = _render()
    (secret,) = [d for d in documents if d["kind"] == "Secret" and d["metadata"]["name"] == "rel-outrider-auth"]
    tokens = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert set(tokens) == {"client.token", "admin.token"} and tokens["client.token"] != tokens["admin.token"]
    assert all(len(token) == 48 for token in tokens.values())
    (config_map,) = [d for d in documents if d["kind"] == "ConfigMap"]
    run = load_run_config([config_map])
    for service in ("policy", "env", "reward", "curriculum"):
        auth = getattr(run, service).server.auth
        assert auth.token_files == {"client": "/var/run/outrider/auth/client.token", "admin": "/var/run/outrider/auth/admin.token"}
        assert not auth.insecure
    roles = {}
    for name, pod in _workloads(documents).items():
        if name.endswith("-redis"):
            continue
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        roles[name] = env["OUTRIDER_AUTH_ROLE"]
        assert env["OUTRIDER_AUTH_DIR"] == "/var/run/outrider/auth"
        assert {"name": "auth", "mountPath": "/var/run/outrider/auth", "readOnly": True} in container["volumeMounts"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "auth"]
        assert volume["secret"]["secretName"] == "rel-outrider-auth"
    # Only the learner updates the policy's weights.
    assert roles.pop("rel-outrider-learner") == "admin"
    assert set(roles.values()) == {"client"} and "rel-outrider-rollout-workers" in roles


@needs_helm
def test_without_auth_the_services_say_insecure_explicitly():
    documents = _render("auth.enabled=false")
    assert [d["metadata"]["name"] for d in documents if d["kind"] == "Secret"] == ["rel-outrider-redis-auth"]
    (config_map,) = [d for d in documents if d["kind"] == "ConfigMap"]
    run = load_run_config([config_map])
    assert all(getattr(run, s).server.auth.insecure for s in ("policy", "env", "reward", "curriculum"))
    for pod in _workloads(documents).values():
        names = {e["name"] for e in pod["containers"][0].get("env", [])}
        assert not names & {"OUTRIDER_AUTH_DIR", "OUTRIDER_AUTH_ROLE"}
        assert "auth" not in {v["name"] for v in pod["volumes"]}


@needs_helm
def test_the_openai_port_of_the_config_is_the_one_the_service_advertises():
    documents = _render("ports.http=8123")
    (config_map,) = [d for d in documents if d["kind"] == "ConfigMap"]
    run = load_run_config([config_map])
    assert run.policy.http_port == 8123
    (service,) = [d for d in documents if d["kind"] == "Service" and d["metadata"]["name"] == "rel-outrider-policy"]
    assert {"name": "http", "port": 8123, "targetPort": "http"} in service["spec"]["ports"]
    (policy,) = [d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "rel-outrider-policy"]
    assert {"name": "http", "containerPort": 8123} in policy["spec"]["template"]["spec"]["containers"][0]["ports"]


@needs_helm
def test_a_restarted_train_job_resumes_its_run():
    (job,) = [d for d in _render() if d["kind"] == "Job"]
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "train" and "--resume" in args


# --- Policy checks over the rendered manifests (issue 18: hardened pods, network, probes) ---

SERVICES = ("policy", "env", "reward", "curriculum")
COMPONENTS = (*SERVICES, "rollout-workers", "learner", "train", "redis")
# Writable places a process may need; everything else is the read-only image.
WRITABLE_VARIABLES = ("HOME", "XDG_CACHE_HOME", "HF_HOME", "TORCH_EXTENSIONS_DIR", "TRITON_CACHE_DIR", "OUTRIDER_CACHE", "TMPDIR")


def _pods(documents: list[dict]) -> dict[str, dict]:
    """component -> pod template (metadata and spec) of every workload."""
    pods = {}
    for doc in documents:
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            template = doc["spec"]["template"]
            pods[template["metadata"]["labels"]["app.kubernetes.io/component"]] = template
    return pods


def _render_set(tmp_path: Path, name: str) -> list[dict]:
    return _render(values=_values_file(tmp_path, VALUE_SETS[name]))


@needs_helm
@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_every_container_is_non_root_confined_and_writes_only_to_its_emptydirs(name, tmp_path):
    pods = _pods(_render_set(tmp_path, name))
    assert set(pods) == set(COMPONENTS)
    uid = (VALUE_SETS[name] or {}).get("podSecurity", {}).get("runAsUser", 10001)
    for component, template in pods.items():
        spec = template["spec"]
        pod_context = spec["securityContext"]
        expected_uid = 999 if component == "redis" else uid
        assert pod_context["runAsNonRoot"] is True, component
        assert pod_context["runAsUser"] == pod_context["runAsGroup"] == pod_context["fsGroup"] == expected_uid, component
        assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}, component
        assert spec["automountServiceAccountToken"] is False, component
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True and context["allowPrivilegeEscalation"] is False, component
            assert context["privileged"] is False and context["capabilities"] == {"drop": ["ALL"]}, component
            assert context["readOnlyRootFilesystem"] is True, component
            assert "runAsUser" not in context or context["runAsUser"] != 0, component
            sandbox_exception = component == "env" and name != "hardened"
            if sandbox_exception:
                # bwrap's documented needs, and nothing else (docs/deploy.md).
                assert context["seccompProfile"] == {"type": "Unconfined"}
                assert context["appArmorProfile"] == {"type": "Unconfined"}
                assert context["procMount"] == "Unmasked" and spec["hostUsers"] is False
            else:
                assert context["seccompProfile"] == {"type": "RuntimeDefault"}, component
                assert "appArmorProfile" not in context and "procMount" not in context, component
                assert spec.get("hostUsers", True) is True, component
            # Every mount that is not a read-only config/secret is an emptyDir or a claim.
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts and "emptyDir" in volumes[mounts["/tmp"]], component
            writable = [path for path, volume in mounts.items()
                        if "emptyDir" in volumes.get(volume, {}) or "persistentVolumeClaim" in volumes.get(volume, {})
                        or volume == "data"]
            if component == "redis":
                assert mounts["/data"] == "data"  # the StatefulSet's claim
                continue
            env = {e["name"]: e.get("value") for e in container["env"]}
            for variable in WRITABLE_VARIABLES:
                assert any(env[variable] == path or env[variable].startswith(path + "/") for path in writable), (component, variable)


@needs_helm
@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_every_container_has_requests_and_limits_and_services_have_probes(name, tmp_path):
    pods = _pods(_render_set(tmp_path, name))
    for component, template in pods.items():
        for container in template["spec"]["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), component
            assert {"cpu", "memory"} <= set(resources["limits"]), component
            if component in (*SERVICES, "redis"):
                assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(container), component
    for service in SERVICES:
        (container,) = pods[service]["spec"]["containers"]
        assert container["startupProbe"]["grpc"] == {"port": 50051}
        assert container["readinessProbe"]["grpc"] == container["livenessProbe"]["grpc"] == {"port": 50051}
    startup = pods["policy"]["spec"]["containers"][0]["startupProbe"]
    # The policy may load its model for 30 min (180 x 10 s) before liveness counts.
    assert startup["failureThreshold"] * startup["periodSeconds"] == 1800
    others = [pods[s]["spec"]["containers"][0]["startupProbe"] for s in ("env", "curriculum")]
    assert all(p["failureThreshold"] * p["periodSeconds"] == 300 for p in others)


@needs_helm
def test_gpu_nodes_get_the_priority_affinity_and_tolerations_of_the_values(tmp_path):
    pods = _pods(_render_set(tmp_path, "gpu-multi-node"))
    learner, policy = pods["learner"]["spec"], pods["policy"]["spec"]
    assert learner["priorityClassName"] == "training-high" and policy["priorityClassName"] == "inference"
    gpu_toleration = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert learner["tolerations"] == policy["tolerations"] == gpu_toleration
    assert learner["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert learner["affinity"] == GPU_MULTI_NODE["learner"]["affinity"]
    (container,) = learner["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert "--nnodes=4" in container["args"] and "--nproc-per-node=8" in container["args"]
    # Nothing is scheduled with priorities the values did not ask for.
    assert all("priorityClassName" not in pods[c]["spec"] for c in ("env", "reward", "curriculum", "rollout-workers", "train", "redis"))


@needs_helm
def test_no_image_uses_latest_or_no_tag(tmp_path):
    for name in VALUE_SETS:
        for component, template in _pods(_render_set(tmp_path, name)).items():
            for container in template["spec"]["containers"]:
                image = container["image"]
                repository, _, tag = image.rpartition(":")
                assert repository and "/" not in tag and tag not in ("", "latest"), (component, image)


@needs_helm
def test_no_token_or_password_lands_in_a_configmap():
    documents = _render()
    secrets = [d for d in documents if d["kind"] == "Secret"]  # the tokens and the Redis password
    tokens = [base64.b64decode(value).decode() for secret in secrets for value in secret["data"].values()]
    for config_map in [d for d in documents if d["kind"] == "ConfigMap"]:
        text = yaml.safe_dump(config_map["data"])
        assert not any(token in text for token in tokens)
        # No password in any URL's userinfo, only the name of the variable holding it (test_chart_redis.py).
        assert {word.split("://", 1)[1].rpartition("@")[0] for word in text.split() if "://" in word} <= {"", ":${OUTRIDER_REDIS_PASSWORD}"}


# A NetworkPolicy evaluator (the semantics of networking.k8s.io/v1 for what the chart uses:
# podSelector/namespaceSelector peers with matchLabels, TCP/UDP ports, additive policies).

def _matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _peer_matches(peer: dict, labels: dict, namespace: dict) -> bool:
    """namespace: the labels of the pod's namespace (kubernetes.io/metadata.name is its name)."""
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer:
        if not _matches(peer["namespaceSelector"], namespace):
            return False
    elif namespace != RELEASE_NAMESPACE:
        return False  # a bare podSelector means the policy's own namespace
    return _matches(peer.get("podSelector", {}), labels)


def _rule_allows(rule: dict, key: str, labels: dict, namespace: dict, port: int, protocol: str) -> bool:
    peers = rule.get(key)
    if peers and not any(_peer_matches(p, labels, namespace) for p in peers):
        return False
    ports = rule.get("ports")
    return not ports or any(p.get("protocol", "TCP") == protocol and p["port"] == port for p in ports)


def _allowed(policies, source, target, port, protocol="TCP") -> bool:
    """source/target: (labels, namespace labels). Egress of the source and ingress of the target."""
    def side(pod, direction, key, other):
        selecting = [p for p in policies if pod[1] == RELEASE_NAMESPACE and _matches(p["spec"]["podSelector"], pod[0])
                     and direction in p["spec"]["policyTypes"]]
        if not selecting:
            return True  # not isolated
        rules = [r for p in selecting for r in p["spec"].get(direction.lower(), [])]
        return any(_rule_allows(r, key, other[0], other[1], port, protocol) for r in rules)
    return side(source, "Egress", "to", target) and side(target, "Ingress", "from", source)


RELEASE_NAMESPACE = {"kubernetes.io/metadata.name": "release"}


def _pod(component, namespace=RELEASE_NAMESPACE):
    return ({"app.kubernetes.io/name": "outrider", "app.kubernetes.io/instance": "rel", "app.kubernetes.io/component": component}, namespace)


# Every call the components make (hand-derived from outrider/stack.py and the clients):
# (caller, callee, port). 0 = any port (NCCL between learner pods).
EXPECTED_CALLS = {
    ("rollout-workers", "policy", 50051), ("rollout-workers", "env", 50051), ("rollout-workers", "reward", 50051),
    ("rollout-workers", "curriculum", 50051), ("rollout-workers", "redis", 6379),
    ("curriculum", "env", 50051), ("curriculum", "redis", 6379),
    ("policy", "redis", 6379),
    ("env", "policy", 8000),
    ("learner", "policy", 50051), ("learner", "redis", 6379), ("learner", "learner", 0),
    ("train", "policy", 50051), ("train", "env", 50051), ("train", "curriculum", 50051), ("train", "redis", 6379),
}
PROBE_PORTS = (50051, 8000, 9090, 6379, 29500, 12345)


@needs_helm
@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_network_policies_allow_exactly_the_calls_of_the_components(name, tmp_path):
    documents = _render_set(tmp_path, name)
    policies = [d for d in documents if d["kind"] == "NetworkPolicy"]
    pods = _pods(documents)
    # Every pod of the release is selected (isolated) in both directions.
    for component, template in pods.items():
        labels = template["metadata"]["labels"]
        for direction in ("Ingress", "Egress"):
            assert any(_matches(p["spec"]["podSelector"], labels) and direction in p["spec"]["policyTypes"] for p in policies), (component, direction)
    allowed = set()
    for source in COMPONENTS:
        for target in COMPONENTS:
            for port in PROBE_PORTS:
                if _allowed(policies, _pod(source), _pod(target), port):
                    allowed.add((source, target, port))
    expected = set()
    for source, target, port in EXPECTED_CALLS:
        expected |= {(source, target, p) for p in PROBE_PORTS} if port == 0 else {(source, target, port)}
    assert allowed == expected
    # DNS from every pod, to the cluster DNS only.
    dns = ({"k8s-app": "kube-dns"}, {"kubernetes.io/metadata.name": "kube-system"})
    for component in COMPONENTS:
        assert _allowed(policies, _pod(component), dns, 53, "UDP") and _allowed(policies, _pod(component), dns, 53, "TCP")
        assert not _allowed(policies, _pod(component), ({"k8s-app": "other"}, dns[1]), 53, "UDP")
        assert not _allowed(policies, _pod(component), dns, 443)
    # The env pods reach nothing else: no rule with an ipBlock or without a peer.
    (env_policy,) = [p for p in policies if p["metadata"]["name"] == "rel-outrider-env"]
    assert all(rule.get("to") and all("ipBlock" not in peer for peer in rule["to"]) for rule in env_policy["spec"]["egress"])
    # Prometheus scrapes the services' metrics port, nothing else, from where the values say.
    default_scraper = ({"app": "prometheus"}, {"kubernetes.io/metadata.name": "monitoring"})
    hardened_scraper = ({"app.kubernetes.io/name": "prometheus"}, {"kubernetes.io/metadata.name": "obs", "team": "observability"})
    scraper, other = (hardened_scraper, default_scraper) if name == "hardened" else (default_scraper, hardened_scraper)
    for service in SERVICES:
        assert _allowed(policies, scraper, _pod(service), 9090)
        assert not _allowed(policies, other, _pod(service), 9090)
        assert not _allowed(policies, scraper, _pod(service), 50051)
    assert not _allowed(policies, scraper, _pod("redis"), 6379)
    # The same labels in another namespace are not the release's pods.
    assert not _allowed(policies, _pod("rollout-workers", {"kubernetes.io/metadata.name": "other"}), _pod("policy"), 50051)


@needs_helm
def test_an_external_redis_is_reached_on_its_port_by_its_users_only():
    documents = _render("redis.enabled=false", "redis.externalUrl=redis://redis.example:6380/0")
    policies = {d["metadata"]["name"]: d for d in documents if d["kind"] == "NetworkPolicy"}
    assert "rel-outrider-redis" not in policies
    users = {"rollout-workers", "curriculum", "policy", "learner", "train"}
    for component in (*SERVICES, "rollout-workers", "learner", "train"):
        rules = policies[f"rel-outrider-{component}"]["spec"]["egress"]
        to_redis = [r for r in rules if r.get("ports") == [{"protocol": "TCP", "port": 6380}]]
        assert len(to_redis) == (1 if component in users else 0), component
        assert all("to" not in r for r in to_redis)  # networkPolicy.externalRedis.to is empty: any address


@needs_helm
def test_network_policies_can_be_turned_off_and_extended():
    assert not [d for d in _render("networkPolicy.enabled=false") if d["kind"] == "NetworkPolicy"]
    documents = _render("networkPolicy.extraEgress.env[0].ports[0].port=443", "networkPolicy.extraEgress.env[0].to[0].ipBlock.cidr=192.0.2.0/24")
    (env_policy,) = [d for d in documents if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "rel-outrider-env"]
    assert env_policy["spec"]["egress"][-1] == {"ports": [{"port": 443}], "to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}]}


@needs_helm
def test_disruption_budgets_cover_the_services_and_the_workers():
    documents = _render()
    budgets = {d["metadata"]["name"]: d["spec"] for d in documents if d["kind"] == "PodDisruptionBudget"}
    assert set(budgets) == {f"rel-outrider-{c}" for c in (*SERVICES, "rollout-workers")}
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    for name, spec in budgets.items():
        assert spec["maxUnavailable"] == 1
        assert spec["selector"] == deployments[name]["spec"]["selector"]
    assert not [d for d in _render("podDisruptionBudget.enabled=false") if d["kind"] == "PodDisruptionBudget"]


@needs_helm
def test_the_pods_are_wired_to_each_other_through_the_services():
    documents = _render()
    (config_map,) = [d for d in documents if d["kind"] == "ConfigMap"]
    run = load_run_config([config_map])
    assert run.env.agent_gateway == "rel-outrider-policy:8000"  # the port the env NetworkPolicy opens
    assert run.policy.capture.redis_url == "redis://:test-password@rel-outrider-redis:6379/0"
    # Pods made for bwrap name it: the service refuses to start where it cannot run.
    assert run.env.sandbox.backend == "bwrap"
    (curriculum,) = _pods(documents)["curriculum"]["spec"]["containers"]
    assert {"name": "OUTRIDER_ENV_ADDRESS", "value": "rel-outrider-env:50051"} in curriculum["env"]
    for sets, backend in ((("env.sandbox=gvisor", "env.runtimeClassName=gvisor"), "auto"),
                          (("config.env.sandbox.backend=subprocess",), "subprocess")):
        (config_map,) = [d for d in _render(*sets) if d["kind"] == "ConfigMap"]
        run = load_run_config([config_map])
        assert run.env.sandbox.backend == backend


@needs_helm
@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("policy.replicas=-1",), "/policy/replicas"),
        (("rolloutWorkers.replicas=-2",), "/rolloutWorkers/replicas"),
        (("policy.bogus=1",), "'bogus' not allowed"),
        (("networkPolicy.bogus=1",), "'bogus' not allowed"),
        (("podSecurity.runAsUser=0",), "/podSecurity/runAsUser"),
        (("env.sandbox=none",), "/env/sandbox"),
        (("redis.image=redis",), "/redis/image"),
        (("env.sandbox=gvisor",), "env.sandbox=gvisor needs env.runtimeClassName"),
    ],
)
def test_the_values_schema_refuses_bad_values(sets, message):
    args = ["template", "rel", str(CHART)]
    for item in sets:
        args += ["--set", item]
    result = _helm(*args)
    assert result.returncode != 0 and message in result.stderr, result.stderr

"""The pods of a rendered Helm chart, planned as the API server and kubelet would make them
(tests/integration/deploy/test_chart_smoke.py starts them with testkit/chart_cluster.py).

`plan_pods` reads `helm template` output: each workload's pods with their labels,
containers (command/args over the image's entrypoint, env with secretKeyRef /
configMapKeyRef / fieldRef and `$(VAR)` expansion, securityContext, probes) and volumes
(ConfigMap and Secret data as files with their modes and the pod's fsGroup, emptyDirs,
claims, a StatefulSet's claim templates). `hosts_entries` resolves every Service to the pods
its selector picks, on the container ports its targetPorts name, as cluster DNS would answer.

What stays a model of Kubernetes: a Service name resolves to its pods' addresses (no
ClusterIP, no kube-proxy), so a Service must expose the port its pods listen on (checked, as
`ServiceError`); images are local stand-ins (`Image`).
"""

from __future__ import annotations

import base64
import itertools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "10.244.0"  # a /24 that exists only on the test's own bridge and namespaces
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


class ServiceError(AssertionError):
    """The manifests do not fit together (a Service without pods or ports, a missing object)."""


@dataclass
class Image:
    """A local stand-in for a container image: what `docker run` would take from it."""

    entrypoint: list[str]
    cmd: list[str] = field(default_factory=list)
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    """Files the image holds beyond the host's root filesystem: path in the container -> file here."""
    pinned: dict[str, Path] = field(default_factory=dict)
    """Host folders the stand-in needs at their own paths even where a pod volume covers them,
    mounted after the volumes: a checkout under /tmp, where every pod mounts an emptyDir, would
    be hidden from the stand-in (a real image keeps its code at WORKDIR, under no volume)."""


@dataclass
class Mount:
    source: Path
    target: str
    read_only: bool


@dataclass
class Container:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    mounts: list[Mount]
    uid: int | None
    gid: int | None
    groups: list[int]
    read_only_root: bool
    no_new_privs: bool
    drop_capabilities: bool
    ports: dict[str, int]
    probes: dict[str, dict] = field(default_factory=dict)
    """startupProbe / readinessProbe / livenessProbe as rendered."""


@dataclass
class Pod:
    name: str
    kind: str
    labels: dict[str, str]
    ip: str
    hostname: str
    subdomain: str | None
    containers: list[Container] = field(default_factory=list)


def secret_data(doc: dict) -> dict[str, str]:
    values = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
    return values | dict(doc.get("stringData") or {})


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)`: a defined variable's value, `$$` a `$`, anything else as written."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


class _Objects:
    def __init__(self, documents: list[dict]):
        self.documents = documents

    def get(self, kind: str, name: str, where: str) -> dict:
        for doc in self.documents:
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
        raise ServiceError(f"{where}: no {kind} named {name!r} in the rendered manifests")

    def key(self, kind: str, ref: dict, where: str) -> str | None:
        doc = self.get(kind, ref["name"], where)
        data = secret_data(doc) if kind == "Secret" else dict(doc.get("data") or {})
        if ref["key"] not in data:
            if ref.get("optional"):
                return None
            raise ServiceError(f"{where}: {kind} {ref['name']!r} has no key {ref['key']!r}")
        return data[ref["key"]]


def _env(container: dict, pod: Pod, namespace: str, image: Image, objects: _Objects, where: str) -> dict[str, str]:
    env = dict(image.env) | {"HOSTNAME": pod.hostname}
    for source in container.get("envFrom", []):
        kind = "Secret" if "secretRef" in source else "ConfigMap"
        ref = source.get("secretRef") or source["configMapRef"]
        doc = objects.get(kind, ref["name"], where)
        data = secret_data(doc) if kind == "Secret" else dict(doc.get("data") or {})
        env |= {source.get("prefix", "") + k: v for k, v in data.items()}
    fields = {"metadata.name": pod.name, "metadata.namespace": namespace, "status.podIP": pod.ip,
              "spec.nodeName": "smoke-node", "status.hostIP": f"{SUBNET}.1"}
    for item in container.get("env", []):
        name = item["name"]
        if "value" in item:
            env[name] = _expand(str(item["value"]), env)
            continue
        ref = item.get("valueFrom", {})
        if "secretKeyRef" in ref or "configMapKeyRef" in ref:
            kind = "Secret" if "secretKeyRef" in ref else "ConfigMap"
            value = objects.key(kind, ref.get("secretKeyRef") or ref["configMapKeyRef"], f"{where} env {name}")
        elif "fieldRef" in ref:
            path = ref["fieldRef"]["fieldPath"]
            label = re.fullmatch(r"metadata\.labels\['(.+)'\]", path)
            value = pod.labels.get(label.group(1)) if label else fields.get(path)
            if value is None and not label:
                raise ServiceError(f"{where} env {name}: fieldRef {path} is not modelled here")
        else:
            raise ServiceError(f"{where} env {name}: {sorted(ref) or 'no value'} is not modelled here")
        if value is not None:
            env[name] = value
    return env


def _materialize_volume(volume: dict, pod: Pod, root: Path, objects: _Objects, fs_group: int | None,
                        claims: dict[str, str]) -> Path:
    """The volume's folder here, made as the kubelet makes it for this pod."""
    where = f"pod {pod.name} volume {volume['name']}"
    path = root / "pods" / pod.name / "volumes" / volume["name"]
    if "configMap" in volume or "secret" in volume:
        kind = "ConfigMap" if "configMap" in volume else "Secret"
        spec = volume.get("configMap") or volume["secret"]
        doc = objects.get(kind, spec.get("name") or spec["secretName"], where)
        data = secret_data(doc) if kind == "Secret" else dict(doc.get("data") or {})
        items = spec.get("items") or [{"key": k, "path": k} for k in data]
        path.mkdir(parents=True)
        for item in items:
            target = path / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data[item["key"]])
            os.chown(target, 0, fs_group if fs_group is not None else 0)
            target.chmod(item.get("mode", spec.get("defaultMode", 0o644)))
        path.chmod(0o755)
        return path
    if "emptyDir" in volume:
        path.mkdir(parents=True)
        path.chmod(0o777)
        return path
    if "persistentVolumeClaim" in volume:
        claim = volume["persistentVolumeClaim"]["claimName"]
        if claim not in claims:
            objects.get("PersistentVolumeClaim", claim, where)
        path = root / "claims" / claim
        path.mkdir(parents=True, exist_ok=True)
        if fs_group is not None:  # fsGroup: the volume's group, group-writable, setgid
            os.chown(path, 0, fs_group)
            path.chmod(0o2775)
        return path
    raise ServiceError(f"{where}: {sorted(set(volume) - {'name'})} volumes are not modelled here")


def plan_pods(documents: list[dict], root: Path, image_for: Callable[[str], Image], namespace: str = "default") -> list[Pod]:
    """The pods of the workloads in `documents`, their volumes made under `root`."""
    objects = _Objects(documents)
    workloads = [d for d in documents if d["kind"] in ("Deployment", "StatefulSet", "Job")]
    pods: list[Pod] = []
    addresses = (f"{SUBNET}.{n}" for n in itertools.count(10))
    for workload in workloads:
        name, kind, spec = workload["metadata"]["name"], workload["kind"], workload["spec"]
        count = spec.get("parallelism", 1) if kind == "Job" else spec.get("replicas", 1)
        for index in range(count):
            pod_name = f"{name}-{index}" if kind == "StatefulSet" else f"{name}-smoke{index}"
            template = spec["template"]
            pods.append(Pod(pod_name, kind, dict(template["metadata"].get("labels", {})), next(addresses), pod_name,
                            spec.get("serviceName") if kind == "StatefulSet" else None))
            _plan_containers(pods[-1], workload, root, image_for, namespace, objects)
    return pods


def _plan_containers(pod: Pod, workload: dict, root: Path, image_for, namespace: str, objects: _Objects) -> None:
    spec = workload["spec"]["template"]["spec"]
    security = spec.get("securityContext", {})
    fs_group = security.get("fsGroup")
    claims = {t["metadata"]["name"]: f"{t['metadata']['name']}-{pod.name}" for t in workload["spec"].get("volumeClaimTemplates", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    volumes |= {name: {"name": name, "persistentVolumeClaim": {"claimName": claim}} for name, claim in claims.items()}
    folders = {name: _materialize_volume(v, pod, root, objects, fs_group, set(claims.values())) for name, v in volumes.items()}
    if spec.get("initContainers"):
        raise ServiceError(f"pod {pod.name}: initContainers are not modelled here")
    for container in spec["containers"]:
        where = f"pod {pod.name} container {container['name']}"
        image = image_for(container["image"])
        context = security | container.get("securityContext", {})
        env = _env(container, pod, namespace, image, objects, where)
        command = container.get("command") or image.entrypoint
        args = container.get("args") if "args" in container or "command" in container else image.cmd
        argv = [_expand(part, env) for part in [*command, *(args or [])]]
        uid = context.get("runAsUser")
        if context.get("runAsNonRoot") and not uid:
            raise ServiceError(f"{where}: runAsNonRoot, but it would run as root (no runAsUser; the local images are root)")
        mounts = [Mount(Path(image.files[target]), target, True) for target in image.files]
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in folders:
                raise ServiceError(f"{where}: volumeMount {mount['name']!r} names no volume of the pod")
            # ConfigMap and Secret volumes are read-only whatever the mount says, as the kubelet mounts them.
            always_ro = bool({"configMap", "secret"} & set(volumes[mount["name"]]))
            mounts.append(Mount(folders[mount["name"]] / mount.get("subPath", ""), mount["mountPath"],
                                always_ro or bool(mount.get("readOnly"))))
        mounts += [Mount(Path(image.pinned[target]), target, True) for target in image.pinned]
        groups = [g for g in [fs_group, *security.get("supplementalGroups", [])] if g is not None]
        capabilities = context.get("capabilities", {})
        pod.containers.append(Container(
            container["name"], argv, env, container.get("workingDir") or image.workdir, mounts, uid,
            context.get("runAsGroup", 0 if uid is not None else None), groups,
            bool(context.get("readOnlyRootFilesystem")), context.get("allowPrivilegeEscalation") is False,
            "ALL" in capabilities.get("drop", []), {p.get("name", str(p["containerPort"])): p["containerPort"] for p in container.get("ports", [])},
            {kind: container[kind] for kind in PROBES if kind in container},
        ))


def _selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def hosts_entries(documents: list[dict], pods: list[Pod], namespace: str = "default") -> dict[str, list[str]]:
    """address -> names, as cluster DNS answers them: every Service (short, namespaced and
    fully qualified names) at the pods it selects, and a headless Service's pods by
    hostname. A Service with no pod, or with a port its pods do not listen on, is an error."""
    entries: dict[str, list[str]] = {}
    errors = []
    for service in [d for d in documents if d["kind"] == "Service"]:
        name = service["metadata"]["name"]
        selected = [p for p in pods if _selects(service["spec"].get("selector", {}), p.labels)]
        if not selected:
            errors.append(f"Service {name}: its selector matches no pod")
            continue
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for pod in selected:
                listening = {n: p for c in pod.containers for n, p in c.ports.items()}
                number = listening.get(target) if isinstance(target, str) else target
                if number is None:
                    errors.append(f"Service {name} port {port.get('name', port['port'])}: no container port named {target!r} in pod {pod.name}")
                elif number != port["port"]:
                    errors.append(f"Service {name}: port {port['port']} -> {number} needs a ClusterIP, which this model has not")
        fqdn = f"{name}.{namespace}.svc.cluster.local"
        for pod in selected:
            entries.setdefault(pod.ip, []).extend([fqdn, f"{name}.{namespace}.svc", f"{name}.{namespace}", name])
            if service["spec"].get("clusterIP") == "None" and pod.subdomain == name:
                entries[pod.ip][:0] = [f"{pod.hostname}.{fqdn}", f"{pod.hostname}.{name}"]
    if errors:
        raise ServiceError("; ".join(errors))
    return entries


def hosts_file(pod: Pod, entries: dict[str, list[str]]) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", f"{pod.ip}\t{pod.hostname}"]
    lines += [f"{address}\t{' '.join(names)}" for address, names in entries.items()]
    return "\n".join(lines) + "\n"

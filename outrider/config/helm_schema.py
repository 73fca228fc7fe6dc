"""Generate helm/outrider/values.schema.json and the chart's list of services.

    python -m outrider.config.helm_schema          # write the files (`make catalog` runs this)
    python -m outrider.config.helm_schema --check  # exit 1 if one is stale

The chart's `config` value is an Outrider run config, so its schema is
RunConfig's JSON schema: `helm lint/install` then rejects a misspelled or
out-of-range config key with the same rules as `outrider config validate`.
The templates loop over `include "outrider.services"` (templates/_services.tpl,
written here from SERVICE_NAMES), and the schema has a workload per service.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from outrider.config.run import SERVICE_NAMES, RunConfig
from outrider.config.env import ENV_NAME_PATTERN

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "helm" / "outrider" / "values.schema.json"
SERVICES_TPL_PATH = SCHEMA_PATH.parent / "templates" / "_services.tpl"

# What the chart says about some services beyond "a Deployment and a Service".
_SERVICE_NOTES = {"policy": "inference", "curriculum": "keep 1 replica"}

# A Kubernetes quantity as the chart's sizes are written: `8Gi`, `500M`, `1.5Ti`.
_QUANTITY = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?([EPTGMk]i?|[mKk])?$"}
_UID = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
_PROFILE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type"],
    "properties": {"type": {"enum": ["RuntimeDefault", "Unconfined", "Localhost"]}, "localhostProfile": {"type": "string"}},
}
_STARTUP_PROBE = {
    "type": "object",
    "additionalProperties": False,
    "description": "gRPC startup probe: liveness waits up to failureThreshold x periodSeconds.",
    "properties": {
        "periodSeconds": {"type": "integer", "minimum": 1},
        "failureThreshold": {"type": "integer", "minimum": 1},
    },
}
_SERVICE_VALUES = {
    "policy": {"shmSizeLimit": _QUANTITY},
    "env": {
        "sandbox": {
            "enum": ["bwrap", "gvisor"],
            "description": "bwrap: the service's sandbox in a pod with the `bwrap` exceptions; "
            "gvisor: the pod on runtimeClassName, no exceptions (docs/deploy.md).",
        },
        "bwrap": {
            "type": "object",
            "additionalProperties": False,
            "description": "What the env container gets so that bwrap can nest a user namespace and mount /proc.",
            "properties": {
                "hostUsers": {"type": "boolean"},
                "procMount": {"enum": ["Default", "Unmasked"]},
                "seccompProfile": _PROFILE,
                "appArmorProfile": _PROFILE,
            },
        },
        "runtimeClassName": {"type": "string"},
    },
}

_RESOURCES = {"type": "object", "description": "Kubernetes resource requests/limits of the container."}
_SCHEDULING = {
    "priorityClassName": {"type": "string"},
    "nodeSelector": {"type": "object"},
    "tolerations": {"type": "array"},
    "affinity": {"type": "object"},
}
_PEER = {"type": "object", "description": "A NetworkPolicy selector (matchLabels/matchExpressions)."}
_RULES_BY_COMPONENT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        name: {"type": "array", "items": {"type": "object"}}
        for name in (*SERVICE_NAMES, "rolloutWorkers", "learner", "train", "redis")
    },
}


def _obj(properties: dict, description: str = "", required: list[str] | None = None) -> dict:
    schema = {"type": "object", "additionalProperties": False, "properties": properties}
    if description:
        schema["description"] = description
    if required:
        schema["required"] = required
    return schema


def _workload(description: str, minimum_replicas: int = 0, **extra) -> dict:
    props = {
        "replicas": {"type": "integer", "minimum": minimum_replicas},
        "resources": _RESOURCES,
        **_SCHEDULING,
        **extra,
    }
    return _obj(props, description)


def _service_workload(name: str) -> dict:
    note = f" ({_SERVICE_NOTES[name]})" if name in _SERVICE_NOTES else ""
    return _workload(
        f"The {name} service{note}: a Deployment and a Service.",
        startupProbe=_STARTUP_PROBE,
        **_SERVICE_VALUES.get(name, {}),
    )


def build_schema() -> dict:
    run_schema = RunConfig.model_json_schema()
    definitions = run_schema.pop("$defs", {})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Outrider Helm values",
        "type": "object",
        "additionalProperties": False,
        "$defs": definitions,
        "properties": {
            "image": _obj(
                {
                    "repository": {"type": "string", "minLength": 1},
                    "tag": {"type": "string"},
                    "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                },
                "Container image with Outrider installed.",
            ),
            "imagePullSecrets": {"type": "array"},
            "podSecurity": _obj(
                {
                    "runAsUser": _UID,
                    "runAsGroup": _UID,
                    "fsGroup": _UID,
                    "tmpSizeLimit": _QUANTITY,
                    "cacheSizeLimit": _QUANTITY,
                },
                "Non-root user of every Outrider container and the sizes of its writable emptyDirs.",
            ),
            "config": run_schema,
            "sharedStorage": _obj(
                {
                    "existingClaim": {"type": "string"},
                    "size": {"type": "string"},
                    "storageClassName": {"type": "string"},
                    "mountPath": {"type": "string", "pattern": "^/"},
                },
                "ReadWriteMany volume shared by the learner and the policy replicas.",
            ),
            "redis": _obj(
                {
                    "enabled": {"type": "boolean"},
                    "externalUrl": {"type": "string"},
                    "image": {"type": "string", "pattern": r"^[^@]+(:[^:/@]+|@sha256:[0-9a-f]{64})$"},
                    "runAsUser": _UID,
                    "runAsGroup": _UID,
                    "fsGroup": _UID,
                    "appendonly": {"type": "boolean"},
                    "storage": {"type": "string"},
                    "storageClassName": {"type": "string"},
                    "resources": _RESOURCES,
                    **_SCHEDULING,
                    "auth": _obj(
                        {
                            "enabled": {"type": "boolean"},
                            "existingSecret": {"type": "string"},
                            "existingSecretKey": {"type": "string", "minLength": 1},
                        },
                        "Redis password from a Secret (generated unless existingSecret), as "
                        "OUTRIDER_REDIS_PASSWORD in the pods that use Redis.",
                    ),
                    "tls": _obj(
                        {"enabled": {"type": "boolean"}, "existingSecret": {"type": "string"}},
                        "rediss://: existingSecret is a kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt).",
                    ),
                },
                "In-cluster Redis (StatefulSet), or an external URL.",
            ),
            "ports": _obj(
                {name: _PORT for name in ("grpc", "metrics", "http")},
                "Container ports of the services.",
            ),
            **{name: _service_workload(name) for name in SERVICE_NAMES},
            "rolloutWorkers": _workload(
                "Celery rollout workers.",
                concurrency={"type": "integer", "minimum": 1},
                autoscaling=_obj(
                    {
                        "minReplicas": {"type": "integer", "minimum": 1},
                        "maxReplicas": {"type": "integer", "minimum": 1},
                        "targetBacklogPerReplica": {"type": "integer", "minimum": 1},
                        "keda": _obj(
                            {
                                "enabled": {"type": "boolean"},
                                "pollingInterval": {"type": "integer", "minimum": 1},
                                "cooldownPeriod": {"type": "integer", "minimum": 0},
                                "operator": _obj(
                                    {"namespace": {"type": "string", "minLength": 1}, "podSelector": _PEER},
                                    "Where the KEDA operator runs (let in to Redis by its NetworkPolicy).",
                                ),
                            },
                            "A KEDA ScaledObject on the Celery queue's Redis list.",
                        ),
                        "hpa": _obj(
                            {
                                "enabled": {"type": "boolean"},
                                "metricName": {"type": "string", "minLength": 1},
                                "metricSelector": _PEER,
                            },
                            "An HPA on an external metric of the backlog (a metrics adapter serves it).",
                        ),
                    },
                    "Scaling on the rollout backlog (queued Celery tasks): KEDA, or an HPA on an external metric.",
                ),
            ),
            "learner": _obj(
                {
                    "enabled": {"type": "boolean"},
                    "nodes": {"type": "integer", "minimum": 1},
                    "gpusPerNode": {"type": "integer", "minimum": 1},
                    "rendezvousPort": _PORT,
                    "shmSizeLimit": _QUANTITY,
                    "resources": _RESOURCES,
                    **_SCHEDULING,
                },
                "DeepSpeed learner: one pod per node.",
            ),
            "train": _obj(
                {
                    "enabled": {"type": "boolean"},
                    "backoffLimit": {"type": "integer", "minimum": 0},
                    "resources": _RESOURCES,
                    **_SCHEDULING,
                },
                "The run's dispatcher Job (`outrider train` in cluster mode).",
            ),
            "envSpecs": {
                "type": "object",
                "description": "Environments registered by every env replica at start: name -> EnvSpec (the YAML of "
                "examples/envs/, `name` optional), one ConfigMap file each, listed in env.spec_files.",
                "propertyNames": {"pattern": ENV_NAME_PATTERN},
                "additionalProperties": {"type": "object"},
            },
            "gvisor": _obj(
                {"createRuntimeClass": {"type": "boolean"}, "handler": {"type": "string"}},
                "gVisor RuntimeClass for the env pods.",
            ),
            "auth": _obj(
                {"enabled": {"type": "boolean"}, "existingSecret": {"type": "string"}},
                "Bearer tokens of the services (docs/security.md): a Secret with client.token and admin.token.",
            ),
            "networkPolicy": _obj(
                {
                    "enabled": {"type": "boolean"},
                    "dns": _obj(
                        {"namespace": {"type": "string", "minLength": 1}, "podSelector": _PEER}, "Where the cluster DNS runs."
                    ),
                    "metrics": _obj(
                        {
                            "enabled": {"type": "boolean"},
                            "namespace": {"type": "string", "minLength": 1},
                            "namespaceSelector": _PEER,
                            "podSelector": _PEER,
                        },
                        "Who may scrape the services' metrics port (Prometheus).",
                    ),
                    "externalRedis": _obj(
                        {"to": {"type": "array", "items": {"type": "object"}}},
                        "NetworkPolicy peers of redis.externalUrl; empty: any address on its port.",
                    ),
                    "extraIngress": _RULES_BY_COMPONENT,
                    "extraEgress": _RULES_BY_COMPONENT,
                },
                "Default-deny NetworkPolicies with the calls between components opened (docs/deploy.md).",
            ),
            "podDisruptionBudget": _obj(
                {"enabled": {"type": "boolean"}, "maxUnavailable": {"type": "integer", "minimum": 0}},
                "A PodDisruptionBudget per service and for the rollout workers.",
            ),
        },
    }


def render() -> str:
    return json.dumps(build_schema(), indent=2, sort_keys=False) + "\n"


def render_services_template() -> str:
    """templates/_services.tpl: the service names, space-separated (`splitList " "` in the templates)."""
    return (
        "{{- /* Generated by `make catalog` (python -m outrider.config.helm_schema) from\n"
        "outrider.config.run.ServiceName: do not edit. */ -}}\n"
        f"{{{{- define \"outrider.services\" -}}}}{' '.join(SERVICE_NAMES)}{{{{- end -}}}}\n"
    )


def generated() -> dict[Path, str]:
    return {SCHEMA_PATH: render(), SERVICES_TPL_PATH: render_services_template()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = [path for path, text in generated().items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"stale: {path} (run `make catalog`)")
        return 1 if stale else 0
    for path, text in generated().items():
        if path in stale:
            path.write_text(text)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

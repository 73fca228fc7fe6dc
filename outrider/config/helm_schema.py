"""Generate helm/outrider/values.schema.json.

    python -m outrider.config.helm_schema          # write the file
    python -m outrider.config.helm_schema --check  # exit 1 if it is stale

The chart's `config` value is an Outrider run config, so its schema is
RunConfig's JSON schema: `helm lint/install` then rejects a misspelled or
out-of-range config key with the same rules as `outrider config validate`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from outrider.config.run import RunConfig

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "helm" / "outrider" / "values.schema.json"

_RESOURCES = {"type": "object", "description": "Kubernetes resource requests/limits of the container."}
_SCHEDULING = {
    "nodeSelector": {"type": "object"},
    "tolerations": {"type": "array"},
    "affinity": {"type": "object"},
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
                    "image": {"type": "string"},
                    "appendonly": {"type": "boolean"},
                    "storage": {"type": "string"},
                    "storageClassName": {"type": "string"},
                    "resources": _RESOURCES,
                },
                "In-cluster Redis (StatefulSet), or an external URL.",
            ),
            "ports": _obj(
                {name: {"type": "integer", "minimum": 1, "maximum": 65535} for name in ("grpc", "metrics", "http")},
                "Container ports of the services.",
            ),
            "policy": _workload("Policy service (inference)."),
            "env": _workload("Environment service.", runtimeClassName={"type": "string"}),
            "reward": _workload("Reward service."),
            "curriculum": _workload("Curriculum service (keep 1 replica).", minimum_replicas=0),
            "rolloutWorkers": _workload(
                "Celery rollout workers.",
                concurrency={"type": "integer", "minimum": 1},
                autoscaling=_obj(
                    {
                        "enabled": {"type": "boolean"},
                        "minReplicas": {"type": "integer", "minimum": 1},
                        "maxReplicas": {"type": "integer", "minimum": 1},
                        "targetCPUUtilizationPercentage": {"type": "integer", "minimum": 1, "maximum": 100},
                    }
                ),
            ),
            "learner": _obj(
                {
                    "enabled": {"type": "boolean"},
                    "nodes": {"type": "integer", "minimum": 1},
                    "gpusPerNode": {"type": "integer", "minimum": 1},
                    "rendezvousPort": {"type": "integer", "minimum": 1, "maximum": 65535},
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
                },
                "The run's dispatcher Job (`outrider train` in cluster mode).",
            ),
            "gvisor": _obj(
                {"createRuntimeClass": {"type": "boolean"}, "handler": {"type": "string"}},
                "gVisor RuntimeClass for the env pods.",
            ),
        },
    }


def render() -> str:
    return json.dumps(build_schema(), indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if args.check:
        current = SCHEMA_PATH.read_text() if SCHEMA_PATH.exists() else ""
        if current != render():
            print(f"stale: {SCHEMA_PATH} (run `python -m outrider.config.helm_schema`)")
            return 1
        return 0
    SCHEMA_PATH.write_text(render())
    print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Helm values from a run config, and what a values file would deploy (`outrider deploy`).

One run config drives local and cluster runs: `render` puts it under the chart's `config:`
key, minus what the chart owns in a cluster (service addresses and ports, the Redis URL, the
credentials: templates/_helpers.tpl `outrider.runConfig` fills them in), with a relative
`output_dir` moved onto the shared claim. `check` merges a values file over the chart's
defaults as Helm does, validates it against the chart's JSON schema (the one
`values.schema.json` is generated from) and the run config models, and summarises the
workloads it would create.
"""

from __future__ import annotations

import copy
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from outrider.config import ConfigError, RunConfig, load_config, parse_model, read_yaml
from outrider.config.helm_schema import SCHEMA_PATH, build_schema
from outrider.config.run import SERVICE_NAMES

CHART_DIR = SCHEMA_PATH.parent

# Fields of a run config that the chart sets in a cluster (outrider.runConfig): a local value
# (a loopback address, port 0, an embedded Redis) would be wrong there, so `render` drops them.
CHART_OWNED: tuple[str, ...] = (
    "stack",
    "redis.url",
    "redis.embedded",
    "curriculum.redis.url",
    "curriculum.redis.embedded",
    "policy.http_port",
    "policy.capture.redis_url",
    "env.agent_gateway",
    *(f"{service}.server.{key}" for service in SERVICE_NAMES for key in ("host", "port", "metrics_port", "auth")),
)

# Workloads in the order `check` lists them: values key -> component name.
SERVICE_WORKLOADS = {name: name for name in SERVICE_NAMES}


def merge(base: Any, over: Any) -> Any:
    """`over` merged into `base` as Helm merges values: maps key by key, anything else
    replaced, a null in `over` removes the key."""
    if not isinstance(base, dict) or not isinstance(over, dict):
        return copy.deepcopy(over)
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _read_mapping(path: Path, what: str) -> dict:
    data = read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), [("<root>", f"{what} must be a mapping, got {type(data).__name__}")])
    return data


def _drop(data: dict, dotted: str) -> bool:
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node.get(part)
        if not isinstance(node, dict):
            return False
    if last not in node:
        return False
    del node[last]
    return True


def _prune_empty(data: dict) -> dict:
    for key in list(data):
        if isinstance(data[key], dict):
            _prune_empty(data[key])
            if not data[key]:
                del data[key]
    return data


@dataclass
class Rendered:
    values: dict
    dropped: list[str] = field(default_factory=list)
    """Fields of the run config left to the chart (CHART_OWNED ones the config set)."""
    notes: list[str] = field(default_factory=list)


def render_values(config: Path, values_files: list[Path] = (), overrides: list[str] = (), chart: Path = CHART_DIR) -> Rendered:
    """The chart values for run config `config` (with `KEY=VALUE` overrides), with the values
    files merged over them in order. Raises ConfigError naming the file and field."""
    run = load_config(config, overrides)
    if not isinstance(run, RunConfig):
        raise ConfigError(str(config), [("kind", f"is {run.kind!r}: `deploy render` takes a run config")])
    # Only what the config says: the chart's own defaults (output_dir on the claim, the bus
    # settings of values.yaml) stay in force for everything it leaves out.
    data = run.model_dump(mode="json", exclude_unset=True)
    rendered = Rendered({})
    for dotted in CHART_OWNED:
        if _drop(data, dotted):
            rendered.dropped.append(dotted)
    env_specs = _move_spec_files(data, rendered)
    _prune_empty(data)
    values: dict = {"config": data}
    if env_specs:
        values["envSpecs"] = env_specs
    for path in values_files:
        values = merge(values, _read_mapping(path, "a values file"))
    mount = merge(chart_defaults(chart), values).get("sharedStorage", {}).get("mountPath", "/data")
    output_dir = values["config"].get("output_dir")
    if output_dir is not None and not posixpath.isabs(output_dir):
        values["config"]["output_dir"] = posixpath.join(mount, output_dir)
        rendered.notes.append(f"output_dir {output_dir!r} -> {values['config']['output_dir']!r} (on the shared claim)")
    check_values(values, f"{config} rendered", chart)
    rendered.values = values
    return rendered


def _move_spec_files(data: dict, rendered: Rendered) -> dict:
    """The config's `env.spec_files` (files on this machine, not in the pods) as the chart's
    `envSpecs`: name -> the file's mapping, checked as the env service would check it."""
    from outrider.envs.spec import load_spec_file

    paths = data.get("env", {}).pop("spec_files", None) or []
    specs: dict = {}
    for path in paths:
        name = load_spec_file(path).name  # SpecError (a ConfigError) names the file and field
        if name in specs:
            raise ConfigError(str(path), [("name", f"{name!r} is also the name of an earlier file of env.spec_files")])
        spec = dict(read_yaml(path))
        spec.pop("name", None)
        specs[name] = spec
        agent = spec.get("agent")
        if isinstance(agent, dict) and agent.get("directory"):
            rendered.notes.append(f"envSpecs.{name}.agent.directory {agent['directory']!r} must exist in the env pods' image")
    if specs:
        rendered.notes.append(f"env.spec_files -> envSpecs: {', '.join(specs)} (files of the run's ConfigMap)")
    return specs


def _env_spec_problems(env_specs: Any) -> list[tuple[str, str]]:
    """Each `envSpecs` entry checked as the env service checks a spec file (the schema has
    already checked that the map's keys are names and its values mappings)."""
    from outrider.envs.spec import spec_from_dict

    problems = []
    for name, spec in (env_specs or {}).items():
        if not isinstance(spec, dict):
            continue
        if "name" in spec and spec["name"] != name:
            problems.append((f"/envSpecs/{name}/name", f"is {spec['name']!r}: it must be the key ({name}) or left out"))
            continue
        try:
            spec_from_dict({**spec, "name": name}, f"envSpecs.{name}")
        except ConfigError as exc:
            problems += [(f"/envSpecs/{name}/{path.replace('.', '/')}" if path not in ("<root>", "<spec>") else f"/envSpecs/{name}", message)
                         for path, message in exc.problems]
    return problems


def dump_values(rendered: Rendered, config: Path) -> str:
    header = [f"# Helm values for {config} (`outrider deploy render`): helm install NAME helm/outrider -f THIS"]
    if rendered.dropped:
        header.append(f"# Set by the chart in a cluster, dropped from the config: {', '.join(rendered.dropped)}")
    header += [f"# {note}" for note in rendered.notes]
    return "\n".join(header) + "\n" + yaml.safe_dump(rendered.values, sort_keys=False)


def chart_defaults(chart: Path = CHART_DIR) -> dict:
    path = chart / "values.yaml"
    if not path.exists():
        raise ConfigError(str(path), [("<file>", "the chart's values.yaml is not there (a checkout's helm/outrider; --chart names another)")])
    return _read_mapping(path, "the chart's values")


def _schema_problems(values: dict) -> list[tuple[str, str]]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(build_schema())
    problems = []
    for error in sorted(validator.iter_errors(values), key=lambda e: list(map(str, e.absolute_path))):
        where = "/" + "/".join(str(part) for part in error.absolute_path)
        problems.append((where, error.message))
    return problems


@dataclass
class Workload:
    component: str
    kind: str
    replicas: str
    image: str
    resources: dict


def check_values(values: dict, source: str, chart: Path = CHART_DIR) -> list[Workload]:
    """Validate `values` (a values file's content) merged over the chart's defaults; raise
    ConfigError naming `source` and each offending field; return what would be deployed."""
    merged = merge(chart_defaults(chart), values)
    problems = _schema_problems(merged) or _env_spec_problems(merged.get("envSpecs"))
    if problems:
        raise ConfigError(source, problems)
    try:
        parse_model(RunConfig, merged.get("config"), source)
    except ConfigError as exc:
        raise ConfigError(source, [(f"config.{path}" if path != "<root>" else "config", message)
                                   for path, message in exc.problems]) from None
    return workloads(merged, chart)


def _app_version(chart: Path) -> str:
    meta = _read_mapping(chart / "Chart.yaml", "Chart.yaml")
    return str(meta.get("appVersion", meta.get("version", "")))


def workloads(merged: dict, chart: Path = CHART_DIR) -> list[Workload]:
    image = merged["image"]
    outrider_image = f"{image['repository']}:{image.get('tag') or _app_version(chart)}"
    found = []
    for key, component in SERVICE_WORKLOADS.items():
        section = merged.get(key, {})
        found.append(Workload(component, "Deployment", str(section.get("replicas", 1)), outrider_image, section.get("resources", {})))
    workers = merged["rolloutWorkers"]
    found.append(Workload("rollout-workers", "Deployment", worker_replicas(workers), outrider_image, workers["resources"]))
    learner = merged["learner"]
    if learner["enabled"]:
        found.append(Workload("learner", "StatefulSet", f"{learner['nodes']} (x {learner['gpusPerNode']} GPUs)",
                              outrider_image, learner["resources"]))
    if merged["train"]["enabled"]:
        found.append(Workload("train", "Job", "1", outrider_image, merged["train"]["resources"]))
    redis = merged["redis"]
    if redis["enabled"]:
        found.append(Workload("redis", "StatefulSet", "1", redis["image"], redis["resources"]))
    else:
        where = urlsplit(redis.get("externalUrl") or "")  # host and port only: never a password
        found.append(Workload("redis", "external", "-", f"{where.hostname}:{where.port or 6379}", {}))
    return found


def worker_replicas(workers: dict) -> str:
    """How many rollout worker pods: fixed, or the autoscaler's range and what it follows."""
    scaling = workers["autoscaling"]
    span = f"{scaling['minReplicas']}-{scaling['maxReplicas']}"
    backlog = f"{scaling['targetBacklogPerReplica']} queued rollouts a pod"
    if scaling["keda"]["enabled"]:
        return f"{span} (KEDA: {backlog})"
    if scaling["hpa"]["enabled"]:
        return f"{span} (HPA on {scaling['hpa']['metricName']}: {backlog})"
    return str(workers["replicas"])


def _quantities(resources: dict, kind: str) -> str:
    part = resources.get(kind) or {}
    return ", ".join(f"{name} {value}" for name, value in part.items()) or "-"


def describe(found: list[Workload]) -> str:
    """The workloads as a table, one line each."""
    rows = [("component", "kind", "replicas", "image", "requests", "limits")]
    rows += [(w.component, w.kind, w.replicas, w.image, _quantities(w.resources, "requests"), _quantities(w.resources, "limits"))
             for w in found]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths)) + "  " + row[-1]
                     for row in rows)

"""`outrider deploy render|check` (issue 18): one run config drives local and cluster runs.

render -> helm template -> the ConfigMap loaded with the config models gives back the run
config on every field it set (less the fields the chart owns in a cluster); check refuses bad
values naming the file and the field, and lists what would be deployed."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from outrider.cli.main import app as cli
from outrider.config import RunConfig, load_config
from testkit.helm_chart import load_run_config, needs_helm, one, pods, render

RUN_CONFIG = """\
# what a researcher runs locally with `outrider train`
kind: run
name: round-trip
seed: 7
output_dir: runs
redis: {url: "redis://127.0.0.1:6379/0", socket_timeout_s: 12}
stack: {mode: local, auth: tokens, startup_timeout_s: 60}
bus: {max_len: 64}
policy:
  model: smollm2-135m-instruct
  http_port: 0
  server: {port: 0, log: {format: json}}
env:
  builtin_envs: [math, guess-number]
  builtin_params: {math: {difficulty: "0-1"}}
rollout:
  envs: [math]
  group_size: 4
  max_turns: 1
  sampling: {temperature: 0.7, max_tokens: 96}
learner:
  optimizer: {lr: 3.0e-6}
  groups_per_step: 2
evaluation: {tasks: 16, samples: 4}
"""

# What the chart sets in a cluster (helm/outrider/templates/_helpers.tpl, outrider.runConfig),
# written out by hand: every other field the config set must come back unchanged.
CHART_OWNED_PREFIXES = (
    "stack.", "redis.url", "curriculum.redis.url", "policy.http_port", "policy.capture.redis_url",
    "env.agent_gateway", "env.sandbox.backend", "output_dir",
    *(f"{s}.server.{k}" for s in ("policy", "env", "reward", "curriculum") for k in ("host", "port", "metrics_port", "auth")),
)


def _invoke(*args: str):
    return CliRunner().invoke(cli, ["deploy", *args])


def _leaves(data, prefix=""):
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), data


@needs_helm
def test_render_round_trips_a_run_config_through_the_chart(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(RUN_CONFIG)
    overrides = tmp_path / "cluster.yaml"
    overrides.write_text(yaml.safe_dump({"policy": {"replicas": 3}, "rolloutWorkers": {"concurrency": 2}}))
    values = tmp_path / "values.yaml"
    result = _invoke("render", str(config), "learner.max_steps=7", "-f", str(overrides), "--out", str(values))
    assert result.exit_code == 0, result.output
    assert "dropped from the config: stack, redis.url, policy.http_port, policy.server.port" in result.output

    documents = render(values=values)
    cluster = load_run_config(documents)
    local = load_config(config, ["learner.max_steps=7"])
    assert isinstance(local, RunConfig)
    given = dict(_leaves(local.model_dump(mode="json", exclude_unset=True)))
    back = dict(_leaves(cluster.model_dump(mode="json")))
    carried = {path for path in given if not path.startswith(CHART_OWNED_PREFIXES)}
    assert {"seed", "bus.max_len", "learner.max_steps", "redis.socket_timeout_s", "policy.server.log.format"} <= carried
    assert {path: back[path] for path in carried} == {path: given[path] for path in carried}
    # A relative output_dir lands on the shared claim (sharedStorage.mountPath /data).
    assert cluster.output_dir == "/data/runs" and cluster.stack.mode == "cluster"
    assert cluster.redis.url == "redis://:test-password@rel-outrider-redis:6379/0"
    assert one(documents, "Deployment", "rel-outrider-policy")["spec"]["replicas"] == 3
    worker = pods(documents)["rollout-workers"]["spec"]["containers"][0]
    assert worker["args"] == ["worker", "/etc/outrider/outrider.yaml", "--concurrency", "2"]


def test_render_names_the_file_and_field_of_a_bad_run_config(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("kind: run\nrollout: {group_size: 0}\n")
    result = _invoke("render", str(config))
    assert result.exit_code == 1
    assert f"{config}: invalid configuration" in result.output and "rollout.group_size: Input should be greater than" in result.output
    config.write_text("kind: policy\n")
    result = _invoke("render", str(config))
    assert result.exit_code == 1 and "kind: is 'policy': `deploy render` takes a run config" in result.output


def _check(tmp_path: Path, values: dict | str):
    path = tmp_path / "values.yaml"
    path.write_text(values if isinstance(values, str) else yaml.safe_dump(values))
    return path, _invoke("check", str(path))


def test_check_refuses_bad_values_naming_the_file_and_field(tmp_path):
    cases = [
        ({"policy": {"replicas": -1}}, "/policy/replicas: -1 is less than the minimum of 0"),
        ({"rolloutWorkers": {"concurrency": 0}}, "/rolloutWorkers/concurrency: 0 is less than the minimum of 1"),
        ({"policy": {"replica": 2}}, "/policy: Additional properties are not allowed ('replica' was unexpected)"),
        ({"config": {"bus": {"max_len": 0}}}, "/config/bus/max_len: 0 is less than the minimum of 1"),
        # A rule of the config models beyond the schema (a model validator) names `config`.
        ({"config": {"learner": {"stall_s": 1}}}, "config: Value error, learner.stall_s=1 must exceed"),
        ("- a list\n", "<root>: a values file must be a mapping, got list"),
    ]
    for values, message in cases:
        path, result = _check(tmp_path, values)
        assert result.exit_code == 1, (values, result.output)
        assert f"{path}: invalid configuration" in result.output or f"{path}:" in result.output, result.output
        assert message in result.output, (message, result.output)


def test_check_lists_the_workloads_a_values_file_deploys(tmp_path):
    values = {
        "image": {"repository": "registry.example/outrider", "tag": "1.2.3"},
        "policy": {"replicas": 3},
        "rolloutWorkers": {"replicas": 5},
        "learner": {"nodes": 2, "gpusPerNode": 8},
        "train": {"enabled": False},
        "redis": {"enabled": False, "externalUrl": "redis://cache.example:6380/1"},
    }
    path, result = _check(tmp_path, values)
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines()]
    assert lines[0] == [f"{path}:", "valid"]
    rows = {line[0]: line[1:] for line in lines[2:]}
    image = "registry.example/outrider:1.2.3"
    assert rows["policy"][:3] == ["Deployment", "3", image]
    assert rows["policy"][3:] == ["cpu", "4,", "memory", "32Gi", "nvidia.com/gpu", "1,", "cpu", "8,", "memory", "64Gi"]
    assert rows["env"][:3] == ["Deployment", "2", image] and rows["curriculum"][:2] == ["Deployment", "1"]
    assert rows["rollout-workers"][:3] == ["Deployment", "5", image]
    assert rows["learner"][:5] == ["StatefulSet", "2", "(x", "8", "GPUs)"]
    assert rows["redis"] == ["external", "-", "cache.example:6380", "-", "-"]
    assert "train" not in rows


"""Registering environments in a cluster: the chart's `envSpecs` (issue 18, items 3 and 7).

An environment registered over RegisterEnv lives in the memory of the one env replica the
call reached, and is gone when that pod restarts. The chart's way is `envSpecs`: each entry a
file of the run's ConfigMap that every env replica registers at start (env.spec_files). These
tests render the chart with `helm template` and read the files back with the env service's own
spec loader; tests/integration/deploy/test_chart_smoke.py trains on an environment given this
way, through the rendered pods.
"""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from outrider.cli.main import app
from outrider.envs.spec import load_spec_file
from testkit.helm_chart import needs_helm, one, pods, render, render_error, run_config_data

pytestmark = needs_helm

MATH_EASY = {"python": {"entry_point": "outrider.envs.builtin.math_env:MathEnv"}, "params": {"difficulty": "0"}, "max_turns": 1}
COUNTER = {"remote": {"address": "counter-server:50071", "timeout_s": 5}, "max_turns": 12}


def _values(tmp_path, data: dict, name: str = "values.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_each_env_spec_is_a_configmap_file_listed_in_spec_files(tmp_path):
    values = _values(tmp_path, {"envSpecs": {"math-easy": MATH_EASY, "counter": COUNTER},
                                "config": {"env": {"spec_files": ["/opt/image/own.yaml"]}}})
    documents = render(values=values)
    data = one(documents, "ConfigMap")["data"]
    assert sorted(data) == ["env-spec-counter.yaml", "env-spec-math-easy.yaml", "outrider.yaml"]
    # The config's own files first, then the chart's, at the config volume's mount path.
    assert run_config_data(documents)["env"]["spec_files"] == [
        "/opt/image/own.yaml", "/etc/outrider/env-spec-counter.yaml", "/etc/outrider/env-spec-math-easy.yaml"]
    env_mounts = pods(documents)["env"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "config", "mountPath": "/etc/outrider"} in env_mounts
    # What the env service reads from each file: the key is the name, the rest as written.
    for name, given in (("math-easy", MATH_EASY), ("counter", COUNTER)):
        path = tmp_path / f"env-spec-{name}.yaml"
        path.write_text(data[f"env-spec-{name}.yaml"])
        spec = load_spec_file(path)
        assert spec.name == name and spec.max_turns == given["max_turns"]
    assert load_spec_file(tmp_path / "env-spec-math-easy.yaml").python.entry_point == "outrider.envs.builtin.math_env:MathEnv"
    assert dict(load_spec_file(tmp_path / "env-spec-math-easy.yaml").params) == {"difficulty": "0"}
    assert load_spec_file(tmp_path / "env-spec-counter.yaml").remote.address == "counter-server:50071"


def test_without_env_specs_the_config_keeps_its_spec_files_as_they_are():
    assert "spec_files" not in run_config_data(render())["env"]
    assert list(one(render(), "ConfigMap")["data"]) == ["outrider.yaml"]


def test_a_changed_spec_rolls_the_env_pods(tmp_path):
    """The spec files are not in the run config, so the pods' config checksum covers them."""
    def checksums(spec: dict, name: str) -> dict[str, str]:
        documents = render(values=_values(tmp_path, {"envSpecs": {"math-easy": spec}}, name))
        return {component: template["metadata"]["annotations"]["checksum/config"]
                for component, template in pods(documents).items() if "annotations" in template["metadata"]}

    before = checksums(MATH_EASY, "a.yaml")
    after = checksums({**MATH_EASY, "max_turns": 2}, "b.yaml")
    assert "env" in before and before["env"] != after["env"]
    assert checksums(MATH_EASY, "c.yaml") == before


def test_a_spec_naming_another_environment_or_a_bad_name_is_refused(tmp_path):
    message = render_error(values=_values(tmp_path, {"envSpecs": {"math-easy": {**MATH_EASY, "name": "math"}}}))
    assert 'envSpecs.math-easy.name is "math": it must be the key (math-easy) or left out' in message
    message = render_error(values=_values(tmp_path, {"envSpecs": {"Math_Easy": MATH_EASY}}, "b.yaml"))
    assert "'Math_Easy' does not match pattern" in message


def test_deploy_render_moves_local_spec_files_into_env_specs(tmp_path, monkeypatch):
    """One run config for both: locally env.spec_files are files here; rendered, they are
    envSpecs, and the chart turns them back into spec files in the pods."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "math-easy.yaml").write_text(yaml.safe_dump({"name": "math-easy", **MATH_EASY}))
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"kind": "run", "name": "t", "env": {"spec_files": ["envs/math-easy.yaml"]},
                                      "rollout": {"envs": ["math-easy"]}}))
    out = tmp_path / "values.yaml"
    result = CliRunner().invoke(app, ["deploy", "render", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    values = yaml.safe_load(out.read_text())
    assert values["envSpecs"] == {"math-easy": MATH_EASY}
    assert "spec_files" not in values["config"].get("env", {})
    assert "env.spec_files -> envSpecs: math-easy" in out.read_text()
    assert run_config_data(render(values=out))["env"]["spec_files"] == ["/etc/outrider/env-spec-math-easy.yaml"]


def test_deploy_check_checks_each_spec_as_the_env_service_would(tmp_path):
    bad = _values(tmp_path, {"envSpecs": {"x": {**MATH_EASY, "max_turns": "three"}, "y": {}, "z": {**COUNTER, "name": "w"}}})
    result = CliRunner().invoke(app, ["deploy", "check", str(bad)])
    assert result.exit_code == 1
    assert "/envSpecs/x/max_turns: must be a whole number, got str 'three'" in result.output
    assert "/envSpecs/y/kind: set exactly one of `python`" in result.output
    assert "/envSpecs/z/name: is 'w': it must be the key (z) or left out" in result.output
    good = _values(tmp_path, {"envSpecs": {"math-easy": MATH_EASY}}, "good.yaml")
    result = CliRunner().invoke(app, ["deploy", "check", str(good)])
    assert result.exit_code == 0, result.output

"""Config loading: every problem is reported with the path of the field."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from outrider.config import (
    CONFIG_KINDS,
    ConfigError,
    PolicyServiceConfig,
    RunConfig,
    dump_yaml,
    load_config,
    load_service_config,
    parse_config,
)


def _write(tmp_path, text: str, name: str = "config.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _problems(data) -> dict[str, str]:
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    return dict(error.value.problems)


def test_unknown_field_is_named_with_its_path():
    assert _problems({"bus": {"max_lenn": 5}}) == {"bus.max_lenn": "unknown field"}


def test_out_of_range_value_is_named_with_its_path_and_value():
    problems = _problems({"policy": {"server": {"port": 70000}}})
    assert problems == {"policy.server.port": "Input should be less than or equal to 65535 (got 70000)"}


def test_several_problems_are_all_reported():
    problems = _problems({"bus": {"max_len": 0}, "redis": {"socket_timeout_s": -1}, "seed": "x"})
    assert set(problems) == {"bus.max_len", "redis.socket_timeout_s", "seed"}


def test_cross_field_rule_names_the_section():
    problems = _problems({"stack": {"mode": "cluster", "addresses": {"policy": "p:1"}, "services": ["policy", "env"]}})
    assert list(problems) == ["stack"]
    assert "cluster mode needs addresses for: env" in problems["stack"]


def test_unknown_kind_lists_the_valid_ones():
    problems = _problems({"kind": "learnr"})
    assert problems == {"kind": f"unknown kind 'learnr'; valid kinds: {', '.join(CONFIG_KINDS)}"}


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = _write(tmp_path, "name: ok\nbus:\n  max_len: [1, 2\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    ((where, message),) = error.value.problems
    assert where.startswith("line 4") and "YAML syntax error" in message
    assert str(path) in str(error.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="No such file"):
        load_config(tmp_path / "absent.yaml")


def test_a_top_level_list_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="expected a mapping, got list"):
        load_config(_write(tmp_path, "- 1\n- 2\n"))


def test_dumped_config_loads_back_identically(tmp_path):
    original = parse_config({"name": "r1", "bus": {"max_len": 7}, "policy": {"server": {"port": 5000}}})
    assert load_config(_write(tmp_path, dump_yaml(original))) == original


def test_service_config_from_a_run_file_or_its_own_file(tmp_path):
    run_file = _write(tmp_path, "kind: run\npolicy:\n  server:\n    port: 4100\n", "run.yaml")
    assert load_service_config("policy", run_file).server.port == 4100
    own_file = _write(tmp_path, "kind: policy\nserver:\n  port: 4200\n", "policy.yaml")
    assert load_service_config("policy", own_file).server.port == 4200
    with pytest.raises(ConfigError, match="the env service needs 'env' or 'run'"):
        load_service_config("env", own_file)


def test_every_config_field_has_a_docstring():
    undocumented = []

    def walk(model, path):
        for name, field in model.model_fields.items():
            if not field.description:
                undocumented.append(f"{path}.{name}")
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                walk(annotation, f"{path}.{name}")

    for kind, model in CONFIG_KINDS.items():
        walk(model, kind)
    assert undocumented == []


def test_defaults_are_valid():
    assert RunConfig().policy == PolicyServiceConfig()


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "outrider.cli.main", "config", *args], capture_output=True, text=True, timeout=60
    )


def test_cli_validate_reports_field_paths_and_fails(tmp_path):
    good = _write(tmp_path, "kind: run\nname: demo\n", "good.yaml")
    unknown = _write(tmp_path, "kind: run\nbus:\n  maxlen: 3\n", "unknown.yaml")
    out_of_range = _write(tmp_path, "kind: run\nbus:\n  max_len: -4\n", "range.yaml")
    broken = _write(tmp_path, "kind: run\nbus: [\n", "broken.yaml")

    result = _cli("validate", str(good))
    assert result.returncode == 0 and f"ok: {good} (kind: run)" in result.stdout

    result = _cli("validate", str(good), str(unknown), str(out_of_range), str(broken))
    assert result.returncode == 1
    assert "bus.maxlen: unknown field" in result.stderr
    assert "bus.max_len: Input should be greater than or equal to 1 (got -4)" in result.stderr
    assert f"{broken}: invalid configuration" in result.stderr and "YAML syntax error" in result.stderr


def test_cli_schema_and_show(tmp_path):
    result = _cli("schema", "policy")
    assert result.returncode == 0 and '"server"' in result.stdout
    result = _cli("schema", "nope")
    assert result.returncode == 1 and "unknown kind 'nope'" in result.stderr
    result = _cli("show", str(_write(tmp_path, "name: shown\n")))
    assert result.returncode == 0 and "name: shown" in result.stdout and "max_len: 1024" in result.stdout

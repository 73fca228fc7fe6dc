"""EnvSpec YAML parsing, validation with field paths, defaults, and the registry's entry-point loading."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from outrider.envs.registry import EnvExists, EnvNotFound, EnvRegistry, builtin_spec, load_entry_point
from outrider.envs.spec import SpecError, load_spec_file, spec_from_dict, spec_to_dict
from outrider.proto.v1 import env_pb2

REPO_ROOT = Path(__file__).resolve().parents[3]


def problems_of(data) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        spec_from_dict(data)
    return dict(info.value.problems)


def test_yaml_file_becomes_an_env_spec_with_defaults(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent("""
        name: my-math
        python: {entry_point: "outrider.envs.builtin.math_env:MathEnv"}
        params: {difficulty: 0, feedback: true}
    """))
    spec = load_spec_file(path)
    assert spec.name == "my-math"
    assert spec.python.entry_point == "outrider.envs.builtin.math_env:MathEnv"
    assert dict(spec.params) == {"difficulty": "0", "feedback": "true"}  # scalars become strings
    assert spec.version == "0.0.0" and spec.max_turns == 10 and spec.reward.max_reward == 1.0  # defaults


def test_remote_spec_round_trips_through_dict():
    data = {"name": "counter", "remote": {"address": "127.0.0.1:50071", "timeout_s": 5, "env": "counter"}, "max_turns": 12}
    spec = spec_from_dict(data)
    assert spec.WhichOneof("kind") == "remote"
    assert spec_from_dict(spec_to_dict(spec)) == spec


def test_every_problem_is_reported_with_its_field_path():
    problems = problems_of(
        {
            "name": "Bad Name",
            "python": {"entry_point": "no_colon_here"},
            "max_turns": 5000,
            "sandbox": {"wall_time_s": -1, "max_processes": 100000},
            "tools": [{"name": "python", "parameters_json_schema": "{nope"}, {"name": "python"}],
            "reward": {"max_reward": -1, "verifiers": [{"name": "", "weight": 1}]},
        }
    )
    assert set(problems) == {
        "name",
        "python.entry_point",
        "max_turns",
        "sandbox.wall_time_s",
        "sandbox.max_processes",
        "tools[0].parameters_json_schema",
        "tools[1].name",
        "reward.max_reward",
        "reward.verifiers[0].name",
        "reward.verifiers",  # not applied from a spec at all (see test_env_spec_contract.py)
    }
    assert "lowercase" in problems["name"]
    assert "appears twice" in problems["tools[1].name"]


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        ({"name": "x"}, "kind", "exactly one of `python`"),
        ({"name": "x", "remote": {"address": "no-port"}}, "remote.address", "host:port"),
        ({"name": "x", "remote": {"address": "h:70000"}}, "remote.address", "1-65535"),
        ({"name": "x", "remote": {"address": "h:1", "timeout_s": 9999}}, "remote.timeout_s", "[0, 3600]"),
        ({"name": "x", "remote": {"address": "h:1"}, "params": {"nested": {"a": 1}}}, "params.nested", "scalar"),
    ],
)
def test_single_problems(data, path, message):
    problems = problems_of(data)
    assert message in problems[path]


def test_unknown_fields_are_rejected():
    problems = problems_of({"name": "x", "remote": {"address": "h:1"}, "max_turn": 3})
    assert problems["max_turn"].startswith("unknown field; valid: name,")  # the path as the YAML spells it


def test_example_spec_files_are_valid():
    files = sorted((REPO_ROOT / "examples" / "envs").glob("*.yaml"))
    assert len(files) >= 4
    kinds = {load_spec_file(path).WhichOneof("kind") for path in files}
    assert kinds == {"python", "remote", "agent", "openenv"}


# --- registry --------------------------------------------------------------------


def test_registry_registers_builtins_and_refuses_duplicates():
    registry = EnvRegistry()
    stored = registry.register(builtin_spec("math", {"difficulty": "0"}))
    assert stored.name == "math" and stored.params["difficulty"] == "0"
    assert registry.get("math").catalog.tasks("train")[0].difficulty == 0.0
    with pytest.raises(EnvExists):
        registry.register(builtin_spec("math"))
    registry.register(builtin_spec("math", {"difficulty": "1"}), replace=True)
    assert registry.get("math").spec.params["difficulty"] == "1"
    registry.unregister("math")
    with pytest.raises(EnvNotFound, match="registered: none"):
        registry.get("math")


@pytest.mark.parametrize(
    ("entry_point", "message"),
    [
        ("outrider.envs.no_such_module:Env", "cannot import 'outrider.envs.no_such_module'"),
        ("outrider.envs.builtin.math_env:NoSuchClass", "has no attribute 'NoSuchClass'"),
        ("outrider.envs.builtin.math_env:SYSTEM_PROMPT", "not a subclass of outrider.envs.Environment"),
        ("outrider.envs.interface:Environment", "is abstract"),
    ],
)
def test_bad_entry_points_are_spec_errors(entry_point, message):
    with pytest.raises(SpecError) as info:
        load_entry_point(entry_point)
    assert message in dict(info.value.problems)["python.entry_point"]


def test_bad_params_fail_at_registration_with_the_param_named():
    registry = EnvRegistry()
    with pytest.raises(SpecError) as info:
        registry.register(builtin_spec("math", {"difficulty": "9"}))
    assert "params.difficulty" in dict(info.value.problems)


def test_remote_specs_are_stored_without_contacting_the_remote():
    registry = EnvRegistry()
    registry.register(env_pb2.EnvSpec(name="far", remote=env_pb2.RemoteEndpoint(address="127.0.0.1:1")))
    entry = registry.get("far")
    assert entry.remote and entry.catalog is None


async def test_envs_needing_a_sandbox_refuse_to_start_without_one():
    from outrider.envs.builtin.code_env import CodeEnv
    from outrider.envs.interface import EnvContext

    env = CodeEnv(context=EnvContext(sandbox=None, sandbox_unavailable_reason="bwrap: not found; gvisor: not found"))
    assert len(env.tasks("train")) == 30  # listing tasks needs no sandbox
    with pytest.raises(RuntimeError, match="needs a sandbox, but none is available: bwrap: not found"):
        await env.reset("train-add", 0)

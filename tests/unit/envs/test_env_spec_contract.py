"""EnvSpec fields act or are refused: what registration rejects (naming the field), what
it fills in from the environment's class, and `outrider env validate` speaking the YAML's
snake_case field names."""

from __future__ import annotations

import json
import textwrap

import pytest
from typer.testing import CliRunner

from outrider.cli.main import app
from outrider.envs.registry import EnvRegistry, builtin_spec
from outrider.envs.spec import SpecError, spec_from_dict
from outrider.envs.tools import PYTHON_TOOL
from outrider.proto.v1 import common_pb2, env_pb2

MATH = "outrider.envs.builtin.math_env:MathEnv"
CODE = "outrider.envs.builtin.code_env:CodeEnv"
PYTHON_TOOL_ENV = "outrider.envs.builtin.python_tool_env:PythonToolEnv"
GUESS = "outrider.envs.builtin.guess_number_env:GuessNumberEnv"


def refused(spec: env_pb2.EnvSpec) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        EnvRegistry().register(spec)
    return dict(info.value.problems)


def python(name: str, entry_point: str, **fields) -> env_pb2.EnvSpec:
    return env_pb2.EnvSpec(name=name, python=env_pb2.PythonEntryPoint(entry_point=entry_point), **fields)


def remote(**fields) -> env_pb2.EnvSpec:
    return env_pb2.EnvSpec(name="far", remote=env_pb2.RemoteEndpoint(address="127.0.0.1:7"), **fields)


# --- fields nothing would act on are refused ---------------------------------------


def test_reward_verifiers_are_refused_for_every_kind():
    verifiers = env_pb2.RewardSpec(verifiers=[env_pb2.WeightedVerifier(name="math", weight=1.0)])
    for spec in (python("m", MATH, reward=verifiers), remote(reward=verifiers)):
        problems = refused(spec)
        assert list(problems) == ["reward.verifiers"]
        assert "reward service's verifiers" in problems["reward.verifiers"] and "rollout.reward.outcome" in problems["reward.verifiers"]


@pytest.mark.parametrize(
    ("fields", "path", "words"),
    [
        ({"sandbox": common_pb2.SandboxLimits(wall_time_s=5)}, "sandbox", "runs its code in its own process"),
        ({"params": {"difficulty": "1"}}, "params", "CreateSession carries no params"),
        ({"tools": [PYTHON_TOOL]}, "tools", "runs its own tools"),
    ],
)
def test_a_remote_spec_cannot_carry_what_only_a_python_env_uses(fields, path, words):
    problems = refused(remote(**fields))
    assert list(problems) == [path] and words in problems[path]


def test_a_remote_spec_with_what_acts_is_stored():
    stored = EnvRegistry().register(remote(max_turns=4, reward=env_pb2.RewardSpec(max_reward=2.0, process_signals=True)))
    assert (stored.max_turns, stored.reward.max_reward, stored.reward.process_signals) == (4, 2.0, True)


def test_sandbox_limits_are_refused_for_a_class_that_runs_no_code():
    problems = refused(python("m", MATH, sandbox=common_pb2.SandboxLimits(wall_time_s=5)))
    assert problems == {"sandbox": f"{MATH} runs no code in the sandbox (needs_sandbox is false): the limits would not apply; remove them"}
    stored = EnvRegistry().register(python("c", CODE, sandbox=common_pb2.SandboxLimits(wall_time_s=5)))
    assert stored.sandbox.wall_time_s == 5.0


def test_process_signals_are_refused_for_a_class_that_gives_none():
    problems = refused(python("m", MATH, reward=env_pb2.RewardSpec(process_signals=True)))
    assert problems == {"reward.process_signals": f"{MATH} gives no process signals (its default_spec() says so)"}


# --- tools: the class's own, served with the spec ------------------------------------


def test_tools_come_from_the_class_when_the_spec_leaves_them_out():
    stored = EnvRegistry().register(python("pt", PYTHON_TOOL_ENV))
    assert list(stored.tools) == [PYTHON_TOOL]  # returned by ListEnvs and CreateSession with the spec
    assert list(EnvRegistry().register(python("pt", PYTHON_TOOL_ENV, tools=[PYTHON_TOOL])).tools) == [PYTHON_TOOL]
    assert list(EnvRegistry().register(python("m", MATH)).tools) == []


def test_a_spec_cannot_add_or_change_tools():
    made_up = env_pb2.ToolSchema(name="search", description="web search")
    assert refused(python("m", MATH, tools=[made_up])) == {
        "tools[0].name": f"'search' is not a tool of {MATH} (it serves: none); a spec cannot add tools"
    }
    changed = env_pb2.ToolSchema()
    changed.CopyFrom(PYTHON_TOOL)
    changed.parameters_json_schema = json.dumps({"type": "object", "properties": {"source": {"type": "string"}}})
    problems = refused(python("pt", PYTHON_TOOL_ENV, tools=[changed]))
    assert list(problems) == ["tools[0]"] and "differs from the 'python' schema" in problems["tools[0]"]


def test_process_signals_come_from_the_class_too():
    assert EnvRegistry().register(python("g", GUESS)).reward.process_signals is True
    assert EnvRegistry().register(builtin_spec("guess-number")).reward.process_signals is True
    assert EnvRegistry().register(python("m", MATH)).reward.process_signals is False


# --- YAML shapes, with the YAML's own field names ------------------------------------


def problems_of(data) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        spec_from_dict(data)
    return dict(info.value.problems)


def test_wrong_shapes_are_named_in_snake_case_all_at_once():
    problems = problems_of(
        {
            "name": "x",
            "python": {"entry_point": MATH},
            "max_turns": "three",
            "sandbox": {"wall_time_s": "slow", "max_processes": -1},
            "tools": [{"name": "t", "parameters_json_schema": {"type": "object"}}, "oops"],
            "reward": {"process_signals": "yes", "verifiers": [{"name": "math", "weight": "heavy"}]},
            "remote": {"address": "127.0.0.1:1"},
        }
    )
    assert problems == {
        "max_turns": "must be a whole number, got str 'three'",
        "sandbox.wall_time_s": "must be a number, got str 'slow'",
        "sandbox.max_processes": "-1 is out of range [0, 4294967295]",
        "tools[0].parameters_json_schema": "must be a string, got dict {'type': 'object'} (quote it in YAML)",
        "tools[1]": "must be a mapping, got str 'oops'",
        "reward.process_signals": "must be true or false, got str 'yes'",
        "reward.verifiers[0].weight": "must be a number, got str 'heavy'",
        "remote": "set together with python; `kind` is one of them",
    }


def test_unknown_and_camel_case_fields_are_refused_with_the_snake_case_name():
    problems = problems_of({"name": "x", "remote": {"address": "127.0.0.1:1", "timeoutS": 5}, "maxTurns": 3, "turns": 2})
    assert problems["maxTurns"] == "unknown field; did you mean 'max_turns'? (field names are snake_case, as in the proto)"
    assert problems["remote.timeoutS"] == "unknown field; did you mean 'timeout_s'? (field names are snake_case, as in the proto)"
    # Every field, in the proto's order (the kinds of the `kind` oneof after `remote`, whichever there are).
    assert problems["turns"].startswith("unknown field; valid: name, version, description, python, remote, ")
    assert problems["turns"].endswith(", tools, max_turns, sandbox, reward, params")


def test_env_validate_prints_the_yaml_field_paths(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("""
        name: counter
        remote: {address: "127.0.0.1:50071", timeoutS: 5}
        max_turns: twelve
        sandbox: {wall_time_s: 5}
    """))
    unapplied = tmp_path / "unapplied.yaml"
    unapplied.write_text(textwrap.dedent("""
        name: counter
        remote: {address: "127.0.0.1:50071"}
        sandbox: {wall_time_s: 5}
        reward: {verifiers: [{name: math, weight: 1}]}
    """))
    good = tmp_path / "good.yaml"
    good.write_text("name: counter\nremote: {address: '127.0.0.1:50071'}\nmax_turns: 12\n")
    result = CliRunner().invoke(app, ["env", "validate", str(bad), str(unapplied), str(good)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert f"{bad}: invalid configuration" in lines
    assert "  remote.timeoutS: unknown field; did you mean 'timeout_s'? (field names are snake_case, as in the proto)" in lines
    assert "  max_turns: must be a whole number, got str 'twelve'" in lines
    assert not any("maxTurns" in line or "<spec>" in line for line in lines)
    assert f"{unapplied}: invalid configuration" in lines
    assert any(line.startswith("  sandbox: a remote environment runs its code in its own process") for line in lines)
    assert any(line.startswith("  reward.verifiers: not applied from the spec") for line in lines)
    assert f"ok: {good} (counter, remote)" in result.stdout

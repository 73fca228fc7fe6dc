"""The `openenv` kind of EnvSpec: its validation (every problem with its field path), its
admission (the base URL's host:port held to the remote-address rules; literal strings only,
nothing resolves or connects), and the pure mapping between OpenEnv's wire format and the
Env API (tasks, reset arguments, actions, replies, the text the policy sees)."""

from __future__ import annotations

import json

import pytest

from outrider.envs import openenv
from outrider.envs.admission import Admission, openenv_url_problems
from outrider.envs.interface import TaskNotFound
from outrider.envs.registry import EnvRegistry
from outrider.envs.spec import SpecError, spec_from_dict, spec_to_dict, validate_spec
from outrider.proto.v1 import env_pb2

LOOPBACK = ("127.0.0.1:*", "localhost:*", "[::1]:*")
GOOD = {"base_url": "http://127.0.0.1:8000", "action_field": "message", "seed_tasks": {"train": 3, "test": 2}}


def problems(endpoint: dict, **top) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        spec_from_dict({"name": "echo", "openenv": endpoint, **top})
    return info.value.problems


def test_a_good_spec_gets_its_defaults_and_round_trips():
    spec = spec_from_dict({"name": "echo", "openenv": GOOD})
    assert spec.WhichOneof("kind") == "openenv"
    assert spec.openenv.transport == "websocket"  # the default, written into the stored spec
    assert (spec.version, spec.max_turns, spec.reward.max_reward) == ("0.0.0", 10, 1.0)
    assert spec_from_dict(spec_to_dict(spec)) == spec


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("", "is empty"),
        ("127.0.0.1:8000", "the scheme must be http or https"),
        ("ws://127.0.0.1:8000", "the scheme must be http or https"),
        ("unix:///tmp/env.sock", "the scheme must be http or https"),
        ("http://", "has no host"),
        ("http://user:secret@127.0.0.1:8000", "user info in the URL is refused"),
        ("http://127.0.0.1:8000/?x=1", "no query or fragment"),
        ("http://127.0.0.1:8000/#top", "no query or fragment"),
        ("http://127.0.0.1:0", "port must be in 1-65535"),
        ("http://127.0.0.1:70000", "is not a URL"),
        ("http://127.0.0.1:80a", "is not a URL"),
        ("http://[::zz]:80", "not"),
        ("http://ex ample:80", "may have only letters"),
    ],
)
def test_bad_base_urls_are_refused_naming_the_field(base_url, message):
    found = problems({**GOOD, "base_url": base_url})
    assert [path for path, _ in found] == ["openenv.base_url"]
    assert message in found[0][1]


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        ({"transport": "grpc"}, "openenv.transport", "'grpc' is not one of websocket, http"),
        ({"timeout_s": -1}, "openenv.timeout_s", "must be in [0, 3600]"),
        ({"timeout_s": 4000}, "openenv.timeout_s", "must be in [0, 3600]"),
        ({"action_field": ""}, "openenv.action_field", "is empty"),
        ({"action_field": "a.b"}, "openenv.action_field", "must be a field name"),
        ({"action_template_json": "{mode: chat}"}, "openenv.action_template_json", "not valid JSON"),
        ({"action_template_json": "[1, 2]"}, "openenv.action_template_json", "must be a JSON object, got list"),
        ({"action_template_json": '{"message": "x"}'}, "openenv.action_template_json", "sets 'message', the action_field"),
        ({"observation_field": "a b"}, "openenv.observation_field", "must be a field name"),
        ({"instructions": "x" * 20_000}, "openenv.instructions", "longer than 16384"),
        ({"seed_tasks": {}}, "openenv.seed_tasks", "train and test are both 0"),
        ({"seed_tasks": None, "tasks": []}, "openenv.tasks", "no tasks"),
        ({"tasks": [{"id": "a"}]}, "openenv.seed_tasks", "set together with openenv.tasks"),
        ({"seed_tasks": None, "tasks": [{"id": "a b"}]}, "openenv.tasks[0].id", "must be 1-128 of"),
        ({"seed_tasks": None, "tasks": [{"id": "a"}, {"id": "a"}]}, "openenv.tasks[1].id", "'a' appears twice"),
        ({"seed_tasks": None, "tasks": [{"id": "a", "split": "dev"}]}, "openenv.tasks[0].split", "'dev' is not one of train, test"),
        ({"seed_tasks": None, "tasks": [{"id": "a", "reset_json": "{"}]}, "openenv.tasks[0].reset_json", "not valid JSON"),
        ({"seed_tasks": None, "tasks": [{"id": "a", "reset_json": '"x"'}]}, "openenv.tasks[0].reset_json", "must be a JSON object, got str"),
        ({"seed_tasks": None, "tasks": [{"id": "a", "reset_json": '{"episode_id": "e"}'}]}, "openenv.tasks[0].reset_json", "sets 'episode_id'"),
        ({"seed_tasks": None, "tasks": [{"id": "a", "reset_json": '{"seed": -1}'}]}, "openenv.tasks[0].reset_json", "seed: -1 must be a whole number >= 0"),
        ({"seed_tasks": None, "tasks": [{"id": "a", "reset_json": '{"seed": "7"}'}]}, "openenv.tasks[0].reset_json", "seed: '7' must be"),
        ({"actionField": "x"}, "openenv.actionField", "did you mean 'action_field'?"),
    ],
)
def test_single_problems_of_the_endpoint(change, path, message):
    endpoint = {**GOOD, **change}
    endpoint = {key: value for key, value in endpoint.items() if value is not None}
    found = problems(endpoint)
    assert [p for p, _ in found] == [path], found
    assert message in found[0][1]


def test_a_solved_reward_that_is_no_number_is_refused():
    spec = spec_from_dict({"name": "echo", "openenv": GOOD})
    spec.openenv.solved_reward = float("nan")  # YAML cannot say NaN (json_format refuses it); a RegisterEnv request can
    assert validate_spec(spec) == [("openenv.solved_reward", "nan is not a finite number")]


def test_every_problem_is_reported_at_once():
    found = problems({"base_url": "ftp://h:1", "action_field": "", "tasks": [{"id": "x", "split": "dev"}, {"id": "x"}]})
    assert [path for path, _ in found] == [
        "openenv.base_url", "openenv.action_field", "openenv.tasks[0].split", "openenv.tasks[1].id",
    ]


@pytest.mark.parametrize(
    ("top", "path", "message"),
    [
        ({"sandbox": {"wall_time_s": 5}}, "sandbox", "runs its code in its own process"),
        ({"params": {"level": 2}}, "params", "is not constructed by the env service"),
        ({"tools": [{"name": "search"}]}, "tools", "tools are its actions"),
        ({"reward": {"process_signals": True}}, "reward.process_signals", "gives no process signals"),
        ({"remote": {"address": "127.0.0.1:5"}}, "remote", "set together with openenv"),
    ],
)
def test_fields_nothing_would_act_on_are_refused(top, path, message):
    found = problems(GOOD, **top)
    assert [p for p, _ in found] == [path]
    assert message in found[0][1]


def test_a_spec_without_a_kind_names_all_three():
    with pytest.raises(SpecError) as info:
        spec_from_dict({"name": "echo"})
    assert info.value.problems == [("kind", "set exactly one of `python` (an entry point), `remote` (an address) or `openenv` (a base URL)")]


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("http://127.0.0.1:8000", None),
        ("http://localhost/envs/echo", None),  # port 80 from the scheme matches localhost:*
        ("https://[::1]:8443", None),
        ("http://169.254.169.254:80", "169.254.169.254 is a link-local address"),
        ("http://2852039166", "'http://2852039166' (2852039166:80) is refused: 169.254.169.254 is a link-local address"),
        ("http://[::ffff:a9fe:a9fe]:80", "169.254.169.254 is a link-local address"),
        ("http://metadata.google.internal", "a cloud metadata host name"),
        ("http://0.0.0.0:8000", "the unspecified address"),
        ("http://224.0.0.1:8000", "multicast or broadcast"),
        ("http://envs.example:8000", "'http://envs.example:8000' matches no pattern of allowed_remote_endpoints (127.0.0.1:*, localhost:*, [::1]:*)"),
        ("https://envs.example", "(envs.example:443) matches no pattern"),
    ],
)
def test_base_urls_are_held_to_the_remote_address_rules(base_url, message):
    found = openenv_url_problems(base_url, LOOPBACK)
    if message is None:
        assert found == []
    else:
        assert [path for path, _ in found] == ["openenv.base_url"]
        assert message in found[0][1]


def test_the_allow_list_applies_to_the_urls_host_and_port():
    assert openenv_url_problems("http://envs.example:8000/echo", ["*.example:8000"]) == []
    assert openenv_url_problems("http://envs.example:8001", ["*.example:8000"]) != []


def test_the_registry_refuses_a_url_admission_refuses_without_contacting_it():
    registry = EnvRegistry(admission=Admission.from_config())
    spec = spec_from_dict({"name": "echo", "openenv": {**GOOD, "base_url": "http://envs.example:8000"}})
    with pytest.raises(SpecError) as info:
        registry.register(spec)
    assert [path for path, _ in info.value.problems] == ["openenv.base_url"]
    # A loopback URL where nothing listens is stored: the server may start later.
    stored = registry.register(spec_from_dict({"name": "echo", "openenv": {**GOOD, "base_url": "http://127.0.0.1:1"}}))
    assert stored.openenv.transport == "websocket" and registry.get("echo").openenv


# --- the mapping ------------------------------------------------------------------


def endpoint(**fields) -> env_pb2.OpenEnvEndpoint:
    merged = {key: value for key, value in {**GOOD, **fields}.items() if value is not None}
    return spec_from_dict({"name": "echo", "openenv": merged}).openenv


def test_seed_tasks_are_seeds_and_the_splits_never_share_one():
    seeds = endpoint(seed_tasks={"train": 3, "test": 2})
    train, total = openenv.task_page(seeds, "train", 0, 10)
    assert total == 3 and [t.id for t in train] == ["train-00000", "train-00001", "train-00002"]
    test, total = openenv.task_page(seeds, "test", 1, 10)
    assert total == 2 and [(t.id, t.preview) for t in test] == [("test-00001", "seed 4")]  # seeds 3, 4 after train's 0-2
    assert openenv.reset_body(seeds, "train-00002", 99, "s1") == {"seed": 2, "episode_id": "s1"}  # the task is the seed
    assert openenv.reset_body(seeds, "test-00000", 99, "s1") == {"seed": 3, "episode_id": "s1"}
    for bad in ("train-00003", "test-00002", "train-2", "train-000001", "dev-00000", "train-0000x"):
        with pytest.raises(TaskNotFound):
            openenv.reset_body(seeds, bad, 0, "s")
    with pytest.raises(TaskNotFound, match="unknown split 'dev'"):
        openenv.task_page(seeds, "dev", 0, 1)


def test_listed_tasks_are_reset_arguments_with_the_sessions_seed_unless_fixed():
    listed = endpoint(seed_tasks=None, tasks=[
        {"id": "wide", "reset_json": '{"low": 10, "high": 19, "seed": 5}', "preview": "10 to 19"},
        {"id": "free", "reset_json": '{"low": 0}'},
        {"id": "held-out", "split": "test"},
    ])
    assert openenv.reset_body(listed, "wide", 42, "e") == {"low": 10, "high": 19, "seed": 5, "episode_id": "e"}
    assert openenv.reset_body(listed, "free", 42, "e") == {"low": 0, "seed": 42, "episode_id": "e"}
    assert openenv.reset_body(listed, "held-out", 0, "e") == {"seed": 0, "episode_id": "e"}
    train, total = openenv.task_page(listed, "train", 0, 10)
    assert total == 2 and [(t.id, t.preview) for t in train] == [("wide", "10 to 19"), ("free", '{"low": 0}')]
    assert [t.id for t in openenv.task_page(listed, "test", 0, 10)[0]] == ["held-out"]
    with pytest.raises(TaskNotFound, match="unknown task 'nope'"):
        openenv.reset_body(listed, "nope", 0, "e")


def test_the_policys_text_goes_into_the_action_field_beside_the_template():
    assert openenv.action(endpoint(), "hello") == {"message": "hello"}
    assert openenv.action(endpoint(action_template_json='{"mode": "chat", "n": 2}'), "hi") == {"mode": "chat", "n": 2, "message": "hi"}


def test_replies_are_parsed_or_refused_naming_the_field():
    reply = openenv.parse_reply({"observation": {"text": "hi"}, "reward": 1, "done": True, "metadata": {"n": 2, "ok": True, "tag": "x"}})
    assert (reply.observation, reply.reward, reply.done) == ({"text": "hi"}, 1.0, True)
    assert reply.metrics() == {"n": 2.0, "ok": 1.0}  # numbers only; the string is not a metric
    assert openenv.parse_reply({"observation": {}, "reward": None}).reward is None  # done defaults to false
    assert openenv.parse_reply({"observation": {}, "reward": True}).reward == 1.0  # OpenEnv admits a bool reward
    for data, message in [
        ([], "the reply is a JSON list"),
        ({"reward": 1}, "observation: missing"),
        ({"observation": "hi"}, "observation: a str"),
        ({"observation": {}, "reward": "1"}, "reward: '1' is not a number or null"),
        ({"observation": {}, "reward": float("inf")}, "reward: inf is not a finite number"),
        ({"observation": {}, "done": "yes"}, "done: 'yes' is not true or false"),
        ({"observation": {}, "metadata": [1]}, "metadata: a list"),
    ]:
        with pytest.raises(openenv.ProtocolError, match=message.replace("(", r"\(")):
            openenv.parse_reply(data)


def test_the_policy_sees_one_field_or_the_whole_observation():
    observation = {"text": "lower", "attempt": 2, "board": [1, 2]}
    assert openenv.render(endpoint(observation_field="text"), observation) == "lower"
    assert openenv.render(endpoint(observation_field="board"), observation) == "[1, 2]"
    assert json.loads(openenv.render(endpoint(), observation)) == observation
    with pytest.raises(openenv.ProtocolError, match="has no field 'hint' .* it has: text, attempt, board"):
        openenv.render(endpoint(observation_field="hint"), observation)
    first = openenv.first_messages(endpoint(observation_field="text", instructions="Reply with one word."), openenv.Reply(observation, None, False))
    assert [(m.role, m.content) for m in first] == [("system", "Reply with one word."), ("user", "lower")]


def test_solved_only_when_done_at_or_above_the_threshold():
    done, going = openenv.Reply({}, 1.0, True), openenv.Reply({}, 1.0, False)
    assert openenv.solved(endpoint(solved_reward=1.0), done, 1.0)
    assert not openenv.solved(endpoint(solved_reward=1.0), done, 0.5)
    assert not openenv.solved(endpoint(solved_reward=1.0), going, 1.0)
    assert not openenv.solved(endpoint(), done, 1.0)  # unset: OpenEnv says nothing of success

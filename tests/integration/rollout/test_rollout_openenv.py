"""A rollout group over an OpenEnv environment: the env service of a real stack adapts the
test's OpenEnv-protocol server (`testkit.openenv_server`, on 127.0.0.1) registered with one
spec and no code, and a tiny random policy plays it. The rewards are the game's rule applied
to what the policy actually wrote (1 for the hidden number, else 0; three tries)."""

from __future__ import annotations

import pytest

from outrider.clients.env import EnvClient
from outrider.clients.policy import PolicyClient
from outrider.config import parse_config
from outrider.envs.spec import spec_from_dict
from outrider.rollout.episodes import GroupPlayer, build_group
from outrider.rollout.rewards import assign_rewards
from outrider.stack import LocalStack
from outrider.transport import group_problem
from testkit.openenv_server import ATTEMPTS, ToyServer, expected_reward

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack_and_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("rollout-openenv")
    run = parse_config(
        {
            "name": "rollout-openenv",
            "output_dir": str(root),
            "stack": {"services": ["policy", "env"]},
            "policy": {"backend": "hf", "model": "tiny-random", "dtype": "float32", "http_port": None},
            "env": {"builtin_envs": []},
        }
    )
    server = ToyServer().start()
    try:
        with LocalStack(run, root / "stack") as stack:
            addresses = stack.addresses()
            with PolicyClient(addresses["policy"], credentials=stack.credentials()) as policy, EnvClient(addresses["env"], credentials=stack.credentials("admin")) as env:  # it registers an env
                yield policy, env, server
    finally:
        server.stop()


def test_a_group_plays_an_openenv_environment_registered_by_spec_alone(stack_and_server):
    policy, env, server = stack_and_server
    spec = spec_from_dict({
        "name": "guess-openenv",
        "openenv": {
            "base_url": server.url,
            "action_field": "guess",
            "action_template_json": '{"style": "plain"}',
            "observation_field": "text",
            "instructions": "Guess the hidden integer. Reply with the number only.",
            "seed_tasks": {"train": 4},
            "solved_reward": 1.0,
        },
    })
    env.register(spec)
    rollout = parse_config({"rollout": {"group_size": 4, "sampling": {"max_tokens": 8}}}).rollout
    player = GroupPlayer(policy, env, rollout)
    task = env.list_tasks("guess-openenv", split="train", limit=1)[0]
    assert task.id == "train-00000"  # seed 0: the hidden number is 0
    episodes = player.play(task)
    assign_rewards(task, episodes, rollout.reward)
    result = build_group(task, "rollout-openenv-1", episodes)
    assert result.errors == [] and group_problem(result.group) is None and len(result.group.trajectories) == 4
    assert server.app.state.open_connections == []  # every episode's WebSocket was closed
    for episode in episodes:
        assert episode.messages[0].role == "system" and episode.messages[1].content == "Guess an integer from 0 to 9."
        guesses = [m.content for m in episode.messages if m.role == "assistant"]
        rewards = [turn.env_reward for turn in episode.turns]
        assert len(guesses) == len(rewards) >= 1
        assert rewards == [expected_reward(g, 0) for g in guesses]
        # The episode ends at the first right guess or after three tries (unless the rollout stopped it for repeating).
        expected_turns = next((i + 1 for i, g in enumerate(guesses) if expected_reward(g, 0) == 1.0), ATTEMPTS)
        if episode.repetition is None:
            assert len(rewards) == expected_turns and episode.done
        assert episode.solved == (1.0 in rewards)
        assert episode.outcome_reward == pytest.approx(sum(rewards) - rollout.reward.turn_penalty * (len(rewards) - 1), abs=1e-12)

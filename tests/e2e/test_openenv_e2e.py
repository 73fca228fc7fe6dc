"""`outrider train` on an OpenEnv environment registered by a spec file alone: the test's
OpenEnv-protocol server (`testkit.openenv_server`, uvicorn on 127.0.0.1 in a thread of this
process) is what the run's env service adapts, and a short real training plays it.

Two accounts are compared that do not share any code: the run's (rollouts.jsonl, written
by the dispatcher from the workers' summaries) and the server's own (`app.state.served`,
every reset with the guesses its steps received). The expected rewards are the game's rule
applied to the guesses the server saw: 1 for the hidden number (seed % 10 for the tasks
used here), else 0, summed over the episode, less `turn_penalty` for every turn after the
first (rollout.reward); at most three guesses, the episode ending at the first right one.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
import yaml

from testkit.e2e import finish_train, run_metrics, toy_run_config, train_process
from testkit.openenv_server import ATTEMPTS, ToyServer, expected_reward

pytestmark = pytest.mark.slow

ENV = "guess-openenv"
GROUP_SIZE = 2
GROUPS_PER_STEP = 2
TURN_PENALTY = 0.125  # a binary fraction: the expected rewards are exact in floating point


@pytest.fixture
def toy_server():
    server = ToyServer().start()
    yield server
    server.stop()


def _spec(url: str) -> dict:
    return {
        "name": ENV,
        "version": "1.0.0",
        "openenv": {
            "base_url": url,
            "action_field": "guess",
            "action_template_json": '{"style": "plain"}',
            "observation_field": "text",
            "instructions": "Guess the hidden integer. Reply with the number only.",
            "seed_tasks": {"train": 2, "test": 1},  # train-00000: seed 0, train-00001: seed 1
            "solved_reward": 1.0,
        },
    }


def _expected_reward(guesses: list[str], target: int) -> float:
    return sum(expected_reward(g, target) for g in guesses) - TURN_PENALTY * (len(guesses) - 1)


def test_training_on_an_openenv_server_scores_by_the_servers_rules(tmp_path, toy_server):
    spec = tmp_path / f"{ENV}.yaml"
    spec.write_text(yaml.safe_dump(_spec(toy_server.url)))
    config = toy_run_config(
        tmp_path, "openenv",
        env={"builtin_envs": ["math"], "spec_files": [str(spec)]},
        rollout={
            "envs": [ENV], "group_size": GROUP_SIZE, "workers": 1, "groups_per_worker": 1,
            "sampling": {"max_tokens": 2}, "max_episode_tokens": 1024,
            "reward": {"turn_penalty": TURN_PENALTY},
        },
        learner={"groups_per_step": GROUPS_PER_STEP, "max_steps": 1},
    )
    process = train_process(config)
    output = finish_train(process, timeout=900)
    assert process.returncode == 0, output[-4000:]
    run_dir = tmp_path / "runs" / "openenv"
    assert [m["step"] for m in run_metrics(run_dir)] == [1]

    records = [json.loads(line) for line in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    groups = [r for r in records if "rewards" in r]
    assert len(groups) >= GROUPS_PER_STEP and len(groups) == len(records), records
    assert sum(r["sent"] for r in groups) >= GROUPS_PER_STEP
    for record in groups:
        assert record["errors"] == [] and record["infra_failures"] == 0, record
        assert record["episodes"] == record["trajectories"] == len(record["rewards"]) == GROUP_SIZE

    # The server's account: one reset per recorded episode, one step per recorded turn.
    served = toy_server.app.state.served
    assert len(served) == sum(r["episodes"] for r in groups)
    assert sum(len(e["guesses"]) for e in served) == sum(r["turns"] for r in groups)
    assert toy_server.app.state.open_connections == []  # every session's WebSocket was closed
    # Each group is one task, played G times: the seeds come in whole groups, from the spec's train split.
    by_seed = Counter(e["seed"] for e in served)
    assert set(by_seed) <= {0, 1} and all(n % GROUP_SIZE == 0 for n in by_seed.values()), by_seed
    for episode in served:
        assert episode["target"] == episode["seed"] % 10  # the game's rule with low=0, high=9
        guesses, target = episode["guesses"], episode["target"]
        assert 1 <= len(guesses) <= ATTEMPTS
        # Only the last guess may be right (the episode ends there); else the third wrong one ends it.
        assert all(expected_reward(g, target) == 0.0 for g in guesses[:-1]), episode
        assert expected_reward(guesses[-1], target) == 1.0 or len(guesses) == ATTEMPTS, episode
    # The recorded rewards are those of the episodes the server played, by the game's rule.
    recorded = sorted(reward for r in groups for reward in r["rewards"])
    expected = sorted(_expected_reward(e["guesses"], e["target"]) for e in served)
    assert recorded == pytest.approx(expected, abs=1e-12)

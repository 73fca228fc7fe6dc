"""Self-play end to end on the tiny model: Nim games between the latest policy and an opponent
pinned to an earlier weights version, against the real policy (HF, three resident versions)
and env services; both seats' trajectories, their loss masks and the versions that sampled
them (the policy service's stamp)."""

from __future__ import annotations

import pytest
import redis

from outrider.clients.env import EnvClient
from outrider.clients.policy import PolicyClient
from outrider.config import parse_config
from outrider.models import resolve_model
from outrider.proto.v1 import trajectory_pb2
from outrider.rollout.league import OpponentSampler
from outrider.rollout.selfplay import SelfPlayer
from outrider.rollout.worker import Rollouts
from outrider.stack import LocalStack
from outrider.transport import RedisReceiver, group_problem
from testkit.policy import perturbed_checkpoint

pytestmark = pytest.mark.slow

GAMES = 4


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    root = tmp_path_factory.mktemp("selfplay")
    run = parse_config(
        {
            "name": "selfplay",
            "output_dir": str(root),
            "stack": {"services": ["policy", "env"]},
            "policy": {"backend": "hf", "model": "tiny-random", "dtype": "float32", "http_port": None, "max_resident_versions": 3},
            # 5-10 stones; the untrained model's replies are rarely numbers: take one stone for them.
            "env": {"builtin_envs": ["nim"], "builtin_params": {"nim": {"difficulty": "0", "invalid_move": "take-one"}}},
        }
    )
    with LocalStack(run, root / "stack") as stack, pytest.MonkeyPatch.context() as patch:
        # In-process rollouts (the worker test) present the stack's credentials as a worker would.
        for name, value in stack.child_env("client").items():
            patch.setenv(name, value)
        addresses = stack.addresses()
        with (
            PolicyClient(addresses["policy"], credentials=stack.credentials("admin"), timeout_s=300) as policy,
            EnvClient(addresses["env"], credentials=stack.credentials()) as env,
        ):
            # Two weights updates: versions 1 and 2 (distinct perturbations); 0, 1 stay resident.
            for version in (1, 2):
                perturbed_checkpoint(resolve_model("tiny-random"), root / f"v{version}", scale=0.05, seed=version)
                policy.update_weights_from_path(version, root / f"v{version}")
            yield policy, env, (run, stack)


def rollout(**self_play):
    return parse_config(
        {"rollout": {"envs": ["nim"], "group_size": GAMES, "sampling": {"max_tokens": 6}, "max_episode_tokens": 1024,
                     "self_play": {"envs": ["nim"], **self_play}}}
    ).rollout


def seat_spans(trajectory):
    """(completion token positions, observation token positions) of a seat's trajectory."""
    completions, observations = set(), set()
    for turn in trajectory.turns:
        completions |= set(range(turn.start, turn.start + turn.completion_length))
        end = turn.start + turn.completion_length
        observations |= set(range(end, end + turn.observation_length))
    return completions, observations


def test_both_seats_are_recorded_and_only_the_trained_one_carries_loss(services):
    policy, env, _ = services
    assert list(policy.info().resident_versions) == [2, 1, 0]
    player = SelfPlayer(policy, env, rollout(opponent="fixed", fixed_version=1))
    task = env.list_tasks("nim", split="train", limit=1, include_reference=True)[0]
    stones = int(task.reference)
    episodes = player.play(task, seed=3, key="selfplay-test-1")
    result = player.build(task, "selfplay-test-1", episodes)
    group = result.group
    assert result.errors == [] and group_problem(group) is None
    # Every move takes one stone (take-one) or a legal 1-3: the game lasts 2..stones moves,
    # and both seats moved in every game (5 stones at least, at most 3 per move).
    assert len(group.trajectories) == 2 * GAMES
    by_id = {t.trajectory_id: t for t in group.trajectories}
    for game in range(GAMES):
        trained = game % 2
        seats = [by_id[f"selfplay-test-1/{2 * game + s}"] for s in (0, 1)]
        moves = [len(s.turns) for s in seats]
        assert moves[0] - moves[1] in (0, 1) and 2 <= sum(moves) <= stones
        for seat, trajectory in enumerate(seats):
            completions, observations = seat_spans(trajectory)
            mask = list(trajectory.loss_mask)
            logprobs = list(trajectory.logprobs)
            versions = {turn.policy_version for turn in trajectory.turns}
            if seat == trained:
                # The trained seat: the latest weights (2), loss exactly on its completions.
                assert versions == {2}
                assert {i for i, m in enumerate(mask) if m} == completions
                assert all(logprobs[i] < 0 for i in completions)
            else:
                # The opponent: sampled by the requested version 1 (the service's stamp), no loss.
                assert versions == {1}
                assert not any(mask)
                assert all(logprobs[i] == 0.0 for i in completions)
            assert not completions & observations
            assert all(not mask[i] for i in observations)
            assert len(trajectory.token_ids) == trajectory.prompt_length + sum(t.completion_length + t.observation_length for t in trajectory.turns)
        # Zero-sum: one seat won (it took the last stone: the last move of the game).
        rewards = [s.outcome_reward for s in seats]
        assert sorted(rewards) == [0.0, 1.0]
        last_mover = 0 if moves[0] > moves[1] else 1
        assert rewards[last_mover] == 1.0 and seats[last_mover].solved
        # The game's result for the trained seat, logged per learner step: on its trajectory only.
        assert [[(c.name, c.value, c.weight) for c in seat.reward_components] for seat in seats][trained] == [
            ("self_play_win", seats[trained].outcome_reward, 0.0)
        ]
        assert not seats[1 - trained].reward_components
    # Staleness is the trained turns' version; the old opponent does not count.
    assert group.policy_version == 2
    report = player.report
    assert report["opponent_version"] == 1 and report["latest_version"] == 2 and report["games"] == GAMES
    wins = sum(by_id[f"selfplay-test-1/{2 * g + g % 2}"].outcome_reward for g in range(GAMES))
    assert report["wins"] == wins and report["win_rate"] == wins / GAMES and report["unfinished"] == 0


def test_league_opponent_is_drawn_from_the_seed_and_served_as_drawn(services):
    policy, env, _ = services
    cfg = rollout(opponent="league", league_size=2, weighting="recency", seed=5)
    task = env.list_tasks("nim", split="train", limit=1)[0]
    expected = {key: OpponentSampler.of(cfg.self_play).choose(2, [2, 1, 0], key) for key in ("g-a", "g-b", "g-c", "g-d")}
    assert set(expected.values()) == {1, 0}  # both league members are met
    for key, version in expected.items():
        player = SelfPlayer(policy, env, cfg.model_copy(update={"group_size": 2}))
        episodes = player.play(task, seed=0, key=key)
        assert player.report["opponent_version"] == version
        group = player.build(task, key, episodes).group
        opponents = [t for t in group.trajectories if int(t.trajectory_id.rsplit("/", 1)[1]) not in player.trained]
        assert opponents and {turn.policy_version for t in opponents for turn in t.turns} == {version}


def test_training_both_seats_gives_both_the_loss(services):
    policy, env, _ = services
    player = SelfPlayer(policy, env, rollout(train_both_seats=True))
    task = env.list_tasks("nim", split="train", limit=1)[0]
    group = player.build(task, "both", player.play(task, seed=1, key="both")).group
    for trajectory in group.trajectories:
        completions, _ = seat_spans(trajectory)
        assert {i for i, m in enumerate(trajectory.loss_mask) if m} == completions
        assert {turn.policy_version for turn in trajectory.turns} == {2}


def test_the_worker_plays_a_self_play_group_and_reports_the_win_rate(services):
    policy, env, (run, stack) = services
    wired = run.model_copy(update={
        "rollout": rollout(opponent="fixed", fixed_version=0).model_copy(update={"group_size": 2}),
        "stack": run.stack.model_copy(update={"addresses": stack.addresses()}),
        "redis": run.redis.model_copy(update={"url": stack.redis.url}),
    })
    task = env.list_tasks("nim", split="train", limit=1, include_reference=True)[0]
    summary = Rollouts(wired).play(task, "selfplay-g0000001", seed=1)
    assert summary["sent"] is True and summary["errors"] == [] and summary["trajectories"] == 4
    report = summary["self_play"]
    assert report["opponent_version"] == 0 and report["games"] == 2 and report["unfinished"] == 0
    client = redis.Redis.from_url(stack.redis.url)
    bus = RedisReceiver(client, wired.bus, name="audit")
    (entry,) = [f for _, f in client.xrange(bus.keys.stream) if f[b"gid"] == b"selfplay-g0000001"]
    group = trajectory_pb2.TrajectoryGroup.FromString(entry[b"data"])
    assert group_problem(group) is None and group.policy_version == 2
    # Game g's trained seat is g mod 2: trajectories 0 and 3 train on version 2, 1 and 2 are version 0's.
    versions = {t.trajectory_id.rsplit("/", 1)[1]: {turn.policy_version for turn in t.turns} for t in group.trajectories}
    assert versions == {"0": {2}, "1": {0}, "2": {0}, "3": {2}}
    trained_wins = sum(t.outcome_reward for t in group.trajectories if t.trajectory_id.endswith(("/0", "/3")))
    assert report["wins"] == trained_wins and report["win_rate"] == trained_wins / 2
    assert sorted(c.value for t in group.trajectories for c in t.reward_components if c.name == "self_play_win") == sorted(
        t.outcome_reward for t in group.trajectories if t.trajectory_id.endswith(("/0", "/3")))

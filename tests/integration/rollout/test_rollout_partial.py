"""Partial rollouts and repetition early stop against real policy (HF backend) and env services.

A group is played with a segment budget smaller than its completions, parked (its stored
form goes through protobuf bytes, as through Redis), and resumed by a new player: the
environment sessions are re-created and the finished turns replayed, and every
continuation is token-exact — the sampler's log-probs of each segment equal the
teacher-forced ones of the whole sequence.
"""

from __future__ import annotations

from collections import Counter

import pytest

from outrider.clients.env import EnvClient
from outrider.clients.policy import PolicyClient
from outrider.config import parse_config
from outrider.proto.v1.trajectory_pb2 import INFRA_FAILURE_ENV_ERROR, PartialGroup
from outrider.rollout.episodes import GroupPlayer, build_group
from outrider.rollout.partial import from_partial, partial_group
from outrider.rollout.rewards import assign_rewards
from outrider.rollout.rpcs import Counted
from outrider.stack import LocalStack
from outrider.transport import group_problem

pytestmark = pytest.mark.slow

SEGMENT = 5


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    root = tmp_path_factory.mktemp("partial")
    run = parse_config(
        {
            "name": "partial",
            "output_dir": str(root),
            "stack": {"services": ["policy", "env"]},
            "policy": {"backend": "hf", "model": "tiny-random", "dtype": "float32", "http_port": None},
            "env": {"builtin_envs": ["math"]},
        }
    )
    with LocalStack(run, root / "stack") as stack:
        addresses = stack.addresses()
        with PolicyClient(addresses["policy"], credentials=stack.credentials()) as policy, EnvClient(addresses["env"], credentials=stack.credentials()) as env:
            yield policy, env


def _rollout(**extra):
    return parse_config({"rollout": {"group_size": 4, "sampling": {"max_tokens": 16}, "partial": {"segment_tokens": SEGMENT}, **extra}}).rollout


def _park_after_a_finished_turn(task, stored: list[PartialGroup]):
    """Refuse while no episode has finished a turn (they go on at once), then park: the
    resume must replay finished turns."""

    def park(episodes) -> bool:
        if not any(e.finished_turns for e in episodes):
            return False
        stored.append(PartialGroup.FromString(partial_group(task, "g-partial", 11, episodes, 1).SerializeToString()))
        return True

    return park


def test_a_parked_group_resumes_token_exact_and_replays_its_environment(services):
    policy, env = services
    rollout = _rollout()
    task = env.list_tasks("math", split="train", limit=1, include_reference=True)[0]
    stored: list[PartialGroup] = []
    first = GroupPlayer(policy, env, rollout).play(task, seed=11, park=_park_after_a_finished_turn(task, stored))
    assert len(stored) == 1, "parked once"
    assert any(e.open for e in first) and all(e.open or not e.running for e in first)
    parked = {e.index: e for e in stored[0].episodes}

    counts = Counter()
    player = GroupPlayer(Counted(policy, "policy", counts), Counted(env, "env", counts), rollout)
    counts.clear()
    episodes = player.play(task, seed=11, resume=[from_partial(e) for e in stored[0].episodes], park=lambda _: False)
    assign_rewards(task, episodes, rollout.reward)
    group = build_group(task, "g-partial", episodes).group
    assert group_problem(group) is None and not any(e.error for e in episodes)

    replayed = sum(len(p.trajectory.turns) - p.open for p in parked.values() if not p.done)
    played_on = sum(e.finished_turns - (len(parked[e.index].trajectory.turns) - parked[e.index].open) for e in episodes)
    # One new session per episode still running at the park, one Step per replayed turn
    # and one per turn finished after the resume.
    assert counts["env/CreateSession"] == sum(not p.done for p in parked.values())
    assert counts["env/Step"] == replayed + played_on

    for trajectory in group.trajectories:
        before = parked[int(trajectory.trajectory_id.rsplit("/", 1)[1])].trajectory
        ids, mask = list(trajectory.token_ids), list(trajectory.loss_mask)
        # Nothing lost: what was parked is a prefix of the finished episode.
        assert ids[: len(before.token_ids)] == list(before.token_ids)
        assert list(trajectory.logprobs[: len(before.logprobs)]) == list(before.logprobs)
        covered = set()
        for turn in trajectory.turns:
            assert turn.completion_length <= 16
            if turn.segments:
                assert sum(s.length for s in turn.segments) == turn.completion_length
                assert all(s.length <= SEGMENT for s in turn.segments) and len(turn.segments) >= 2
            end = turn.start + turn.completion_length
            covered |= set(range(turn.start, end))
            # Each continuation is conditioned on exactly the stored tokens.
            scored = policy.score_tokens([(ids[:end], turn.start)]).sequences[0].logprobs
            assert max(abs(a - b) for a, b in zip(scored, trajectory.logprobs[turn.start : end])) < 1e-4
        assert covered == {i for i, m in enumerate(mask) if m}
    assert any(len(t.segments) >= 2 for traj in group.trajectories for t in traj.turns), "some turn was continued"


def test_an_environment_that_answers_differently_on_replay_fails_the_episode(services):
    policy, env = services
    rollout = _rollout()
    task = env.list_tasks("math", split="train", limit=1, include_reference=True)[0]
    stored: list[PartialGroup] = []
    GroupPlayer(policy, env, rollout).play(task, seed=11, park=_park_after_a_finished_turn(task, stored))
    tampered = stored[0]
    victim = next(e for e in tampered.episodes if not e.done and len(e.trajectory.turns) - e.open >= 1)
    # The environment's feedback after the first turn, as if it had said something else.
    feedback = next(i for i, m in enumerate(victim.messages) if m.role == "assistant") + 1
    victim.messages[feedback].content += " (not what it said)"
    episodes = GroupPlayer(policy, env, rollout).play(
        task, seed=11, resume=[from_partial(e) for e in tampered.episodes], park=lambda _: False
    )
    failed = next(e for e in episodes if e.index == victim.index)
    assert failed.failure == INFRA_FAILURE_ENV_ERROR
    assert failed.error == "resume: the environment does not replay: turn 0 is answered differently"
    assert all(not e.error for e in episodes if e.index != victim.index)


def _first_repeat(ids: list[int], n: int, k: int) -> tuple[tuple[int, ...], int, int] | None:
    """By hand: the first n-gram window whose count exceeds k, that count, and where the window ends."""
    seen: dict[tuple[int, ...], int] = {}
    for i in range(len(ids) - n + 1):
        gram = tuple(ids[i : i + n])
        seen[gram] = seen.get(gram, 0) + 1
        if seen[gram] > k:
            return gram, seen[gram], i + n
    return None


@pytest.mark.parametrize("segment_tokens", [None, SEGMENT])
def test_a_repeating_completion_stops_its_episode_flagged_and_penalised(services, segment_tokens):
    policy, env = services
    # Greedy decoding is deterministic: the tiny random model's first two answers repeat no
    # token, its third repeats one (a 1-gram occurring twice), so that turn stops the episode.
    rollout = parse_config({"rollout": {
        "group_size": 2, "sampling": {"max_tokens": 48, "temperature": 0.0},
        "partial": {"segment_tokens": segment_tokens}, "repetition": {"ngram": 1, "max_repeats": 1, "reward": -1.0},
    }}).rollout
    task = env.list_tasks("math", split="train", limit=1, include_reference=True)[0]
    counts = Counter()
    player = GroupPlayer(policy, Counted(env, "env", counts), rollout)
    episodes = player.play(task, seed=0, park=(lambda _: False) if segment_tokens else None)
    assign_rewards(task, episodes, rollout.reward, repetition_reward=rollout.repetition.reward)
    group = build_group(task, "g-loop", episodes).group
    assert group_problem(group) is None
    for trajectory in group.trajectories:
        ids = list(trajectory.token_ids)
        found = [_first_repeat(ids[t.start : t.start + t.completion_length], 1, 1) for t in trajectory.turns]
        assert trajectory.HasField("repetition"), "both greedy episodes repeat in their third answer"
        stop = trajectory.repetition
        # Stopped at the first turn that repeats, which is its last; the earlier ones did not.
        assert stop.turn_index == len(trajectory.turns) - 1 == 2 and not any(found[:-1])
        gram, count, end = found[-1]
        assert (tuple(stop.ngram), stop.count) == (gram, count) == (gram, 2)
        last = trajectory.turns[-1]
        # Early: at the end of the segment in which the repeat appeared, or, in one call,
        # after the whole completion.
        expected = min(-(-end // SEGMENT) * SEGMENT, 48) if segment_tokens else 48
        assert last.completion_length == expected
        assert trajectory.outcome_reward == -1.0 and trajectory.truncated
    # The stopped turn is never sent to the environment: two Steps per episode, not three.
    assert counts["env/Step"] == 2 * 2

"""Parked groups: the stored form of an episode, and which parked groups resume when."""

from __future__ import annotations

from outrider.proto.v1 import common_pb2, trajectory_pb2
from outrider.proto.v1.common_pb2 import ChatMessage
from outrider.proto.v1.trajectory_pb2 import INFRA_FAILURE_ENV_ERROR, PartialGroup, Segment, Turn
from outrider.rollout.episodes import Episode
from outrider.rollout.partial import due, from_partial, newest_version, partial_group


def open_episode() -> Episode:
    """Prompt of 2 tokens; turn 0 finished (3 tokens, then 2 of the env's); turn 1 open:
    4 tokens so far, sampled over two calls by versions 5 and 6."""
    episode = Episode(
        index=3,
        messages=[ChatMessage(role="user", content="q"), ChatMessage(role="assistant", content="abc"), ChatMessage(role="user", content="again")],
        token_ids=[10, 11, 1, 2, 3, 20, 21, 4, 5, 6, 7],
        logprobs=[0.0, 0.0, -0.125, -0.25, -0.375, 0.0, 0.0, -0.5, -0.625, -0.75, -0.875],  # exact in float32
        loss_mask=[False, False, True, True, True, False, False, True, True, True, True],
        prompt_length=2,
        process_scores=[0.25],
        open=True,
    )
    episode.turns = [
        Turn(start=2, completion_length=3, observation_length=2, policy_version=4, env_reward=0.5),
        Turn(start=7, completion_length=4, policy_version=5, segments=[Segment(length=2, policy_version=5), Segment(length=2, policy_version=6)]),
    ]
    return episode


def test_an_open_episode_comes_back_from_its_stored_form_exactly():
    episode = open_episode()
    task = common_pb2.Task(id="t1", env="math")
    stored = partial_group(task, "run-g0000001", 7, [episode, Episode(index=4, done=True, process_scores=[None])], parks=2)
    wire = PartialGroup.FromString(stored.SerializeToString())
    assert (wire.group_id, wire.task.id, wire.seed, wire.parks) == ("run-g0000001", "t1", 7, 2)
    # The newest segment anywhere in the group: version 6 (turn 1's second segment).
    assert wire.policy_version == 6
    back = from_partial(wire.episodes[0])
    for name in ("index", "messages", "token_ids", "logprobs", "loss_mask", "prompt_length", "turns", "process_scores", "open", "done"):
        assert getattr(back, name) == getattr(episode, name), name
    assert back.running and not back.error and back.session_id == ""
    # A missing process score stays missing (not 0).
    assert from_partial(wire.episodes[1]).process_scores == [None] and from_partial(wire.episodes[1]).done
    # The episode's turns are its own: growing them leaves the stored message alone.
    back.turns[-1].completion_length += 5
    assert wire.episodes[0].trajectory.turns[-1].completion_length == 4


def test_failures_and_repetition_stops_are_kept():
    episode = open_episode()
    episode.open = False
    episode.fail(INFRA_FAILURE_ENV_ERROR, "env ERROR: boom")
    episode.repetition = trajectory_pb2.RepetitionStop(turn_index=1, ngram=[4, 5], count=3)
    back = from_partial(partial_group(common_pb2.Task(id="t"), "g", 0, [episode], 1).episodes[0])
    assert (back.error, back.failure) == ("env ERROR: boom", INFRA_FAILURE_ENV_ERROR) and not back.running
    assert list(back.repetition.ngram) == [4, 5] and back.repetition.count == 3


def test_newest_version_reads_segments_and_turns():
    assert newest_version([open_episode()]) == 6
    assert newest_version([Episode(index=0)]) == 0


def _parked(gid: str, version: int, when: float) -> PartialGroup:
    return PartialGroup(group_id=gid, policy_version=version, parked_unix=when)


def test_due_resumes_on_newer_weights_only_oldest_first_and_not_twice():
    parked = [_parked("c", 2, 30.0), _parked("a", 1, 20.0), _parked("b", 3, 10.0), _parked("d", 1, 5.0)]
    # Served version 3: "b" was sampled by 3 already; "d" is in play; a, c by older weights.
    assert [g.group_id for g in due(parked, 3, in_play={"d"}, limit=10)] == ["a", "c"]
    # Longest parked first, at most `limit`.
    assert [g.group_id for g in due(parked, 4, in_play=set(), limit=2)] == ["d", "b"]
    assert due(parked, 1, in_play=set(), limit=10) == []
    assert due(parked, 9, in_play=set(), limit=0) == []

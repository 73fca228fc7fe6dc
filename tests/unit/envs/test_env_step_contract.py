"""The Step contract (services/env/contract.py) on hand-made replies: what breaks it, and
what the env service answers instead (ERROR, done, no reward, the field named)."""

from __future__ import annotations

import math

import pytest

from outrider.proto.v1 import common_pb2, env_pb2
from outrider.services.env.contract import checked_step, step_problem

OK, ERROR = common_pb2.ItemStatus.OK, common_pb2.ItemStatus.ERROR
SPEC = env_pb2.EnvSpec(name="e", reward=env_pb2.RewardSpec(max_reward=1.0))
SIGNALS = env_pb2.EnvSpec(name="e", reward=env_pb2.RewardSpec(max_reward=1.0, process_signals=True))


def reply(reward: float | None = 0.0, turn: int = 1, code: int = OK, **info) -> env_pb2.StepResponse:
    made = env_pb2.StepResponse(turn=turn, status=common_pb2.ItemStatus(code=code), info=env_pb2.StepInfo(**info))
    if reward is not None:
        made.reward = reward
    return made


def test_a_reply_that_keeps_the_contract_has_no_problem():
    assert step_problem(SPEC, reply(0.0), turns=0, total_reward=0.0) is None  # 0 is a reward
    assert step_problem(SIGNALS, reply(0.25, turn=3, process_score=1.0), turns=2, total_reward=0.75) is None
    # Five rewards of 0.2 sum to 1.0000000000000002: within max_reward 1.
    assert step_problem(SPEC, reply(0.2, turn=5), turns=4, total_reward=0.2 + 0.2 + 0.2 + 0.2) is None


@pytest.mark.parametrize(
    ("spec", "made", "turns", "total", "starts"),
    [
        (SPEC, env_pb2.StepResponse(reward=1.0, turn=1), 0, 0.0, "status: unset"),
        (SPEC, reply(None), 0, 0.0, "reward: absent with status OK"),
        (SPEC, reply(math.nan), 0, 0.0, "reward: nan is not a finite number"),
        (SPEC, reply(math.inf), 0, 0.0, "reward: inf is not a finite number"),
        (SPEC, reply(0.5, turn=2), 1, 0.75, "reward: the episode's rewards sum to 1.25, above spec.reward.max_reward (1)"),
        (SPEC, reply(0.0, process_score=0.5), 0, 0.0, "info.process_score: given, but the spec does not declare"),
        (SIGNALS, reply(0.0, process_score=1.5), 0, 0.0, "info.process_score: 1.5 is not in [0, 1]"),
        (SIGNALS, reply(0.0, process_score=math.nan), 0, 0.0, "info.process_score: nan is not in [0, 1]"),
        (SPEC, reply(0.0, turn=0), 0, 0.0, "turn: 0, expected 1"),
        (SPEC, reply(0.0, turn=2), 2, 0.0, "turn: 2, expected 3"),
    ],
)
def test_what_breaks_the_contract_is_named_by_field(spec, made, turns, total, starts):
    problem = step_problem(spec, made, turns, total)
    assert problem is not None and problem.startswith(starts), problem


def test_a_broken_reply_becomes_an_error_without_a_reward():
    made = reply(None, turn=3)
    made.observation.messages.append(common_pb2.ChatMessage(role="user", content="next"))
    out = checked_step(SPEC, made, turns=2, total_reward=0.5, where="remote environment 'e' at 127.0.0.1:9")
    assert out.status.code == ERROR and out.status.source == "env:e"
    assert out.status.message == (
        "remote environment 'e' at 127.0.0.1:9 broke the Step contract: reward: absent with status OK "
        "(a step that worked has a reward, 0 included; one that failed says ERROR)"
    )
    assert not out.HasField("reward") and out.done and out.turn == 3 and not out.observation.messages


def test_an_error_reply_is_kept_but_ends_the_episode_and_drops_its_reward():
    made = reply(0.3, turn=0, code=ERROR)
    made.status.message = "disk full"
    out = checked_step(SPEC, made, turns=1, total_reward=0.0, where="x")
    assert (out.status.code, out.status.message, out.status.source) == (ERROR, "disk full", "env:e")
    assert out.done and not out.HasField("reward") and out.turn == 2


def test_a_good_reply_is_passed_on_unchanged():
    made = reply(0.5, turn=1)
    assert checked_step(SPEC, made, turns=0, total_reward=0.0, where="x") is made
    assert made.reward == 0.5 and made.status.code == OK

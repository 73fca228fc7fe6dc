"""Deadlines and stall limits (docs/training.md, Deadlines and watchdogs): a stall limit
must exceed the longest single wait of its loop, or a call waiting out its deadline would
be taken for a stall; 0 turns a watchdog off."""

from __future__ import annotations

import pytest

from outrider.config import ConfigError, parse_config


def test_defaults_leave_room_for_every_deadline():
    run = parse_config({})
    assert (run.deadlines.policy_s, run.deadlines.env_s, run.deadlines.reward_s, run.deadlines.curriculum_s) == (600, 60, 120, 30)
    # learner 1800 > sync 600; worker 1200 > RunAgent 900 (> policy 600); dispatcher 3600 > task limit 1800
    assert (run.learner.stall_s, run.rollout.stall_s, run.rollout.dispatcher_stall_s) == (1800, 1200, 3600)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"learner": {"stall_s": 600}}, "learner.stall_s=600 must exceed learner.sync.timeout_s=600"),
        ({"learner": {"stall_s": 20, "sync": {"timeout_s": 10}}}, "learner.stall_s=20 must exceed redis.socket_timeout_s=30"),
        ({"rollout": {"stall_s": 900}}, "rollout.stall_s=900 must exceed rollout.agents.run_timeout_s=900"),
        ({"rollout": {"stall_s": 1000, "agents": {"run_timeout_s": 10}}, "deadlines": {"policy_s": 1000}},
         "rollout.stall_s=1000 must exceed deadlines (longest)=1000"),
        ({"rollout": {"dispatcher_stall_s": 1800}}, "rollout.dispatcher_stall_s=1800 must exceed rollout.task_time_limit_s=1800"),
    ],
)
def test_a_stall_limit_within_a_deadline_is_refused_naming_both(data, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert message in str(caught.value)


def test_zero_turns_the_watchdogs_off_whatever_the_deadlines():
    run = parse_config({"learner": {"stall_s": 0}, "rollout": {"stall_s": 0, "dispatcher_stall_s": 0},
                        "deadlines": {"policy_s": 86_400}})
    assert (run.learner.stall_s, run.rollout.stall_s, run.rollout.dispatcher_stall_s) == (0, 0, 0)


def test_a_deadline_must_be_positive():
    with pytest.raises(ConfigError) as caught:
        parse_config({"deadlines": {"env_s": 0}})
    assert "deadlines.env_s" in str(caught.value)

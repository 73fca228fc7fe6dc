"""SessionManager: capacity, idle TTL with a controlled clock, cleanup closes sessions, expired ids are named."""

from __future__ import annotations

import pytest

from outrider.proto.v1 import common_pb2, env_pb2
from outrider.services.env.sessions import Session, SessionLimitReached, SessionManager, SessionNotFound


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def manager(ttl_s=10.0, max_sessions=2):
    closed = []

    async def closer(session):
        closed.append(session.id)

    clock = Clock()
    return SessionManager(ttl_s, max_sessions, closer, clock), clock, closed


def new_session(sessions: SessionManager, env="math") -> Session:
    session = Session(sessions.reserve(), env, env_pb2.EnvSpec(name=env))
    sessions.add(session)
    return session


def test_capacity_is_enforced_and_freed_by_closing():
    sessions, _, _ = manager(max_sessions=2)
    first = new_session(sessions)
    new_session(sessions)
    with pytest.raises(SessionLimitReached, match="limit"):
        sessions.reserve()
    sessions.pop(first.id)
    new_session(sessions)
    assert len(sessions) == 2


async def test_idle_sessions_expire_and_are_closed_and_named_expired():
    sessions, clock, closed = manager(ttl_s=10.0)
    idle = new_session(sessions)
    busy = new_session(sessions)
    clock.now += 6
    sessions.get(busy.id)  # use refreshes the idle timer
    clock.now += 6  # idle: 12 s > 10 s; busy: 6 s
    expired = await sessions.expire_idle()
    assert [s.id for s in expired] == [idle.id]
    assert closed == [idle.id]
    with pytest.raises(SessionNotFound, match="expired"):
        sessions.get(idle.id)
    with pytest.raises(SessionNotFound, match="unknown session"):
        sessions.get("never-existed")
    assert sessions.get(busy.id) is busy


async def test_a_session_in_the_middle_of_a_step_is_not_expired():
    sessions, clock, closed = manager(ttl_s=1.0)
    session = new_session(sessions)
    clock.now += 5
    async with session.lock:
        assert await sessions.expire_idle() == []
    assert [s.id for s in await sessions.expire_idle()] == [session.id]
    assert closed == [session.id]


async def test_close_all_closes_every_session_even_when_one_close_fails():
    attempts = []

    async def closer(session):
        attempts.append(session.id)
        if len(attempts) == 1:
            raise RuntimeError("remote gone")

    sessions = SessionManager(10.0, 5, closer, Clock())
    ids = [new_session(sessions).id for _ in range(3)]
    await sessions.close_all()
    assert attempts == ids
    assert len(sessions) == 0


def test_record_accumulates_totals_and_counts_failures():
    session = Session("s", "code", env_pb2.EnvSpec(name="code"))
    ok = common_pb2.ItemStatus(code=common_pb2.ItemStatus.OK)
    bad_call = env_pb2.ToolCall(name="python", status=common_pb2.ItemStatus(code=common_pb2.ItemStatus.INVALID_INPUT))
    session.record(env_pb2.StepResponse(turn=1, reward=0.0, status=ok, info=env_pb2.StepInfo(tool_calls=[bad_call])))
    session.record(env_pb2.StepResponse(turn=2, reward=1.0, done=True, status=ok, info=env_pb2.StepInfo(solved=True)))
    assert (session.turns, session.total_reward, session.solved, session.done) == (2, 1.0, True, True)
    assert (session.errors, session.tool_errors) == (0, 1)
    failed = env_pb2.StepResponse(turn=3, done=True, status=common_pb2.ItemStatus(code=common_pb2.ItemStatus.ERROR))
    session.record(failed)
    assert session.errors == 1 and session.total_reward == 1.0  # no reward: nothing added

"""The stall watchdog (outrider.process.Watchdog) on a hand-driven clock, and on its thread."""

from __future__ import annotations

import re
import threading
import time

import pytest

from outrider.process import Stalled, Watchdog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_stall_is_named_once_after_the_limit_and_a_beat_restarts_the_clock():
    clock, fired = Clock(), []
    dog = Watchdog("learner", 600, fired.append, clock=clock)
    dog.beat("waiting for groups")              # t = 1000
    clock.now = 1600.0                           # silent 600 s: at the limit, not past it
    assert dog.check() is None and fired == []
    clock.now = 1500.0
    dog.beat("update step 3")                    # the clock restarts at t = 1500
    clock.now = 2100.0                           # 600 s since that beat: still fine
    assert dog.check() is None
    clock.now = 2100.5                           # 600.5 s > 600
    error = dog.check()
    assert isinstance(error, Stalled)
    assert str(error) == "learner: no progress for 600 s (last: update step 3); stall limit 600 s"
    assert fired == [error]
    clock.now = 3000.0
    assert dog.check() is not None and len(fired) == 1  # reported once
    dog.rearm()                                  # after a recovery: counted again from t = 3000
    clock.now = 3600.0
    assert dog.check() is None
    clock.now = 3601.0
    assert "no progress for 601 s (last: update step 3)" in str(dog.check()) and len(fired) == 2


def test_idle_time_is_not_silence():
    clock, fired, busy = Clock(), [], [False]
    dog = Watchdog("rollout worker", 100, fired.append, clock=clock, active=lambda: busy[0])
    dog.beat("idle")                             # t = 1000
    clock.now = 5000.0                           # 4000 s without a task
    assert dog.check() is None
    busy[0] = True                               # a group starts; the silence counts from the check at 5000
    clock.now = 5100.0
    assert dog.check() is None
    clock.now = 5101.0
    assert "no progress for 101 s" in str(dog.check())


@pytest.mark.parametrize("stall_s", [0, None])
def test_zero_or_none_turns_it_off(stall_s):
    clock, fired = Clock(), []
    dog = Watchdog("learner", stall_s, fired.append, clock=clock)
    clock.now += 1e9
    assert not dog.enabled and dog.check() is None and fired == []
    dog.start()
    assert dog._thread is None


def test_the_thread_fires_within_a_poll_of_the_limit():
    stalled = threading.Event()
    seen: list[Stalled] = []

    def on_stall(error):
        seen.append(error)
        stalled.set()

    dog = Watchdog("dispatcher", 0.4, on_stall, poll_s=0.02).start()
    started = time.monotonic()
    for _ in range(10):                          # 10 beats 0.1 s apart: 1 s of progress, no stall
        time.sleep(0.1)
        dog.beat("tick")
    assert not stalled.is_set()
    assert stalled.wait(5)
    elapsed = time.monotonic() - started
    dog.stop()
    # The last beat came at ~1.0 s; the stall is due 0.4 s later, noticed within a poll.
    assert 1.4 <= elapsed < 2.5, elapsed
    assert re.fullmatch(r"dispatcher: no progress for 0\.[4-9] s \(last: tick\); stall limit 0\.4 s", str(seen[0]))

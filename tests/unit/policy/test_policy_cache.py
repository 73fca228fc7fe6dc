"""build_once: one builder across racing processes; a failed build leaves no folder behind."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from outrider.models.cache import COMPLETE_MARKER, build_once


def _slow_builder(log: str):
    def build(out: Path) -> None:
        with open(log, "a") as handle:
            handle.write("build\n")
        time.sleep(0.5)  # long enough that every racer arrives while the first builds
        (out / "weights.bin").write_text("ok")

    return build


def _race(target: str, log: str, results) -> None:
    results.put(str(build_once(Path(target), _slow_builder(log))))


def test_racing_processes_build_once(tmp_path):
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    target, log = tmp_path / "models" / "m", tmp_path / "builds.log"
    racers = [context.Process(target=_race, args=(str(target), str(log), results)) for _ in range(4)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(60)
    assert [racer.exitcode for racer in racers] == [0] * 4
    assert sorted(results.get(timeout=5) for _ in range(4)) == [str(target)] * 4
    assert log.read_text() == "build\n"
    assert (target / "weights.bin").read_text() == "ok" and (target / COMPLETE_MARKER).is_file()


def test_a_failed_build_leaves_nothing_and_the_next_one_succeeds(tmp_path):
    target = tmp_path / "m"

    def broken(out: Path) -> None:
        (out / "half.bin").write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        build_once(target, broken)
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == [".m.lock"]
    build_once(target, lambda out: (out / "w").write_text("ok"))
    assert (target / "w").read_text() == "ok"


def test_an_unmarked_folder_is_rebuilt(tmp_path):
    target = tmp_path / "m"
    target.mkdir()
    (target / "stale").write_text("from a crashed writer of an older layout")
    build_once(target, lambda out: (out / "fresh").write_text("ok"))
    assert sorted(p.name for p in target.iterdir()) == [COMPLETE_MARKER, "fresh"]

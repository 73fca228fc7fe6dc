"""The progress lines between learner steps say what the learner is doing (issue 21)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from outrider.config import parse_config
from outrider.learner.status import FILE, LearnerStatus, describe, read_status
from outrider.train.driver import RolloutStats
from outrider.train.progress import Progress


def test_the_status_file_holds_the_latest_phase_and_rank_other_than_0_writes_nothing(tmp_path):
    status = LearnerStatus(tmp_path)
    status.set("waiting", 3, "1 of 5 groups")
    status.set("update", 3, "40 sequences, 5,312 trained tokens")
    record = json.loads((tmp_path / FILE).read_text())
    assert (record["phase"], record["step"], record["detail"]) == ("update", 3, "40 sequences, 5,312 trained tokens")
    assert read_status(tmp_path) == record
    LearnerStatus(None).set("update", 9)  # a rank other than 0
    assert read_status(tmp_path)["step"] == 3
    assert not list(tmp_path.glob("*.tmp"))


def test_describe_names_phase_step_detail_and_seconds_in_it():
    record = {"phase": "update", "step": 3, "detail": "40 sequences", "since_unix": 1000.0}
    assert describe(record, now_unix=1025.4) == "learner: update step 3 (40 sequences) 25 s"
    assert describe({"phase": "checkpoint", "step": 2, "detail": "", "since_unix": 10.0}, 12.0) == "learner: checkpoint step 2 2 s"
    assert describe(None, 0.0) == "learner starting"


def test_a_waiting_progress_line_ends_with_the_learners_phase(tmp_path, capsys):
    run = parse_config({"learner": {"max_steps": 4}})
    dispatcher = SimpleNamespace(stats=RolloutStats(finished=7, episode_errors=1), pending={"g1": None, "g2": None})
    progress = Progress(run, tmp_path, dispatcher)
    LearnerStatus(tmp_path).set("update", 2, "16 sequences")
    progress.maybe_print(final=True)
    header, line = capsys.readouterr().out.splitlines()
    assert header.split()[:2] == ["step", "reward"]
    fields = line.split()
    assert fields[:4] == ["…", "2", "7", "1"]  # no step yet, 2 in play, 7 finished, 1 error
    assert line.rstrip().endswith("s") and "learner: update step 2 (16 sequences)" in line


def test_a_new_detail_in_the_same_phase_keeps_its_start_and_a_new_phase_restarts_it(tmp_path, monkeypatch):
    clock = iter([100.0, 160.0, 400.0])
    monkeypatch.setattr("outrider.learner.status.time.time", lambda: next(clock))
    status = LearnerStatus(tmp_path)
    status.set("update", 1, "8 sequences: scoring pass")  # t = 100
    status.set("update", 1, "8 sequences: epoch 1/2, mini-batch 1/2")
    assert read_status(tmp_path)["since_unix"] == 100.0  # the update's 60 s so far, not 0
    assert describe(read_status(tmp_path), 160.0) == "learner: update step 1 (8 sequences: epoch 1/2, mini-batch 1/2) 60 s"
    status.set("sync", 1, "weights version 1 to the policy")  # t = 160: a new phase
    assert read_status(tmp_path)["since_unix"] == 160.0
    status.set("update", 2, "8 sequences: scoring pass")  # t = 400: the next step's update is new
    assert read_status(tmp_path)["since_unix"] == 400.0

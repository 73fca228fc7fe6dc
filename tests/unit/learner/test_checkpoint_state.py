"""`read_state`: how far a learner got, read from its checkpoints without loading an engine
(what `outrider train` supervises a run with)."""

from __future__ import annotations

import json
from dataclasses import asdict

from outrider.learner.checkpoint import LATEST, LearnerState, read_state


def _write(root, tag: str, state: LearnerState) -> None:
    (root / "state").mkdir(parents=True, exist_ok=True)
    (root / "state" / f"{tag}.json").write_text(json.dumps(asdict(state)))


def test_the_newest_complete_checkpoint_is_the_one_latest_names(tmp_path):
    _write(tmp_path, "step-0000001", LearnerState(step=1, trained_group_ids=["a"]))
    _write(tmp_path, "step-0000002", LearnerState(step=2, policy_version=2, trained_group_ids=["a", "b"]))
    # A state file written without LATEST naming it (a crash while saving) does not count.
    _write(tmp_path, "step-0000003", LearnerState(step=3))
    (tmp_path / LATEST).write_text("step-0000002")
    assert read_state(tmp_path) == LearnerState(step=2, policy_version=2, trained_group_ids=["a", "b"])
    assert read_state(tmp_path, "step-0000001").trained_group_ids == ["a"]


def test_no_checkpoint_yet_is_none(tmp_path):
    assert read_state(tmp_path) is None
    assert read_state(tmp_path / "missing") is None

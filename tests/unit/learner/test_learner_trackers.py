"""The learner's metrics sink: metrics.jsonl, TensorBoard and an offline W&B run, samples."""

from __future__ import annotations

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from outrider.config.common import WandbConfig
from outrider.learner.metrics_log import MetricsLog
from testkit.wandb_records import history

SAMPLES = [
    {"group_id": "g1", "reward": 1.0, "solved": True, "prompt": "what is 2+3?", "completion": "5"},
    {"group_id": "g1", "reward": -0.6, "solved": False, "prompt": "what is 2+3?", "completion": "6\nwrong\n7"},
]


@pytest.fixture
def logged(tmp_path):
    log = MetricsLog(tmp_path, ["tensorboard", "wandb"], None, WandbConfig(project="outrider-test", tags=["unit"]),
                     "run-a", {"learner": {"optimizer": {"lr": 5e-5}}})
    for step, reward in ((1, 0.25), (2, 0.5), (3, 0.75)):
        log.write(step, {"reward_mean": reward, "actor/loss": -reward, "note": "text values are not scalars"}, [0])
    log.write_samples(3, SAMPLES)
    log.close()
    return tmp_path


def test_every_step_reaches_metrics_jsonl_and_the_samples_file(logged):
    steps = [json.loads(line) for line in (logged / "metrics.jsonl").read_text().splitlines()]
    assert [(s["step"], s["reward_mean"]) for s in steps] == [(1, 0.25), (2, 0.5), (3, 0.75)]
    samples = [json.loads(line) for line in (logged / "samples.jsonl").read_text().splitlines()]
    assert samples == [{"step": 3, **s} for s in SAMPLES]


def test_the_offline_wandb_run_holds_every_step_and_the_samples_table(logged):
    (run_file,) = logged.glob("wandb/offline-run-*/run-*.wandb")
    rows = history(run_file)
    scalars = [(r["_step"], r["reward_mean"], r["actor/loss"]) for r in rows if "reward_mean" in r]
    assert scalars == [(1, 0.25, -0.25), (2, 0.5, -0.5), (3, 0.75, -0.75)]
    assert not any("note" in r for r in rows)
    (table_row,) = [r for r in rows if "samples/_type" in r]
    assert table_row["samples/_type"] == "table-file" and table_row["samples/nrows"] == 2
    table = json.loads((run_file.parent / "files" / table_row["samples/path"]).read_text())
    assert table["columns"] == ["step", "group_id", "reward", "solved", "prompt", "completion"]
    assert [row[5] for row in table["data"]] == ["5", "6\nwrong\n7"]


def test_tensorboard_gets_the_scalars_and_the_samples_text(logged):
    (events,) = logged.glob("tensorboard/events.out.tfevents.*")
    accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    assert [(e.step, e.value) for e in accumulator.Scalars("reward_mean")] == [(1, 0.25), (2, 0.5), (3, 0.75)]
    (text,) = accumulator.Tensors("samples/text_summary")
    assert text.step == 3 and "6\n    wrong\n    7" in text.tensor_proto.string_val[0].decode()

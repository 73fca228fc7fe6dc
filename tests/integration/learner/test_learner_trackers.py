"""A real `outrider learn` run with `report_to: [tensorboard, wandb]`: the offline W&B run
holds every step's metrics as metrics.jsonl has them, the run's config, and the decoded
sample episodes (read back without W&B's own code: testkit.wandb_records)."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from outrider.models import resolve_model
from testkit.learner import finish, learn_process, learnable_groups, produce_groups, write_run_config
from testkit.wandb_records import config, history

pytestmark = pytest.mark.slow


def test_metrics_config_and_samples_reach_an_offline_wandb_run(any_redis_url, bus_prefix, tmp_path):
    groups = learnable_groups(4)
    produce_groups(any_redis_url, bus_prefix, groups)
    run_dir = tmp_path / "run"
    learner = {"ranks": 1, "max_steps": 2, "report_to": ["tensorboard", "wandb"], "log_samples": 2,
               "wandb": {"project": "outrider-test", "tags": ["integration"]}}
    finish(learn_process(write_run_config(tmp_path / "run.yaml", run_dir, any_redis_url, bus_prefix, learner)))

    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    (run_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    rows = {row["_step"]: row for row in history(run_file) if "actor/loss" in row}
    assert sorted(rows) == [1, 2]
    for step in steps:
        assert rows[step["step"]]["actor/loss"] == pytest.approx(step["actor/loss"], rel=1e-6)
        assert rows[step["step"]]["reward_mean"] == pytest.approx(step["reward_mean"], rel=1e-6)
    assert list(run_dir.glob("tensorboard/events.out.tfevents.*"))
    recorded = config(run_file)
    assert recorded["learner"]["max_steps"] == 2 and recorded["learner"]["report_to"] == ["tensorboard", "wandb"]

    # Samples: 2 per step, each one of the produced trajectories, decoded from its tokens.
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("tiny-random"))
    produced = {(g.group_id, tokenizer.decode(list(t.token_ids)[t.prompt_length:])) for g in groups for t in g.trajectories}
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert [s["step"] for s in samples] == [1, 1, 2, 2]
    assert all((s["group_id"], s["completion"]) in produced for s in samples)

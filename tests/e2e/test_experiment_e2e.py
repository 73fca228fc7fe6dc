"""`outrider experiment --scale tiny` end to end: real `outrider train` runs (services,
Redis, Celery workers, DeepSpeed learner) of entropy-collapse and nsr-psr, their
reports and JSON checked against what the runs wrote, and a second invocation that
skips the finished runs.

Cost (2 CPU cores): one arm of entropy-collapse and two of nsr-psr (the second given the
first's evaluation before training), 2 learner steps each, evaluation 4 tasks × 4
samples, one run at a time. The recipe expansion test (tests/unit/experiment) covers
every arm of both recipes.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TINY = ["learner.max_steps=2", "learner.groups_per_step=2", "rollout.group_size=4", "evaluation.tasks=4", "evaluation.samples=4"]


def _experiment(recipe: str, arm: str, out: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "outrider.cli.main", "experiment", recipe, "--scale", "tiny", "--arms", arm,
               "--out", str(out), *TINY]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _finish(process: subprocess.Popen, timeout: float = 540) -> str:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        raise AssertionError(f"`outrider experiment` did not finish in {timeout} s:\n{output[-4000:]}") from None
    assert process.returncode == 0, output[-4000:]
    return output


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _check(out: Path, arm: str, metric_keys: list[str]) -> dict:
    data = json.loads((out / "experiment.json").read_text())
    assert list(data["arms"]) == [arm]
    run_dir = out / arm / "seed-0"
    records = _records(run_dir)
    assert [r["step"] for r in records] == [1, 2]
    summary = json.loads((run_dir / "summary.json").read_text())
    (measured,) = data["runs"]
    # Every number is the run's own: the curves as metrics.jsonl has them, the final value
    # its last step's, pass@k the run's evaluation after training (and before it).
    for key in metric_keys:
        assert measured["curves"][key] == [[r["step"], r[key]] for r in records], key
        final = data["arms"][arm]["final"][key]
        assert final["mean"] == records[-1][key] and final["n"] == 1 and final["half"] is None
    after, before = summary["after"], summary["before"]
    assert data["arms"][arm]["final"]["pass@1 after"]["mean"] == after["pass_at_k"]["1"]
    assert data["arms"][arm]["final"]["pass@4 after"]["mean"] == after["pass_at_k"]["4"]
    assert data["base_pass_at_k"]["4"]["mean"] == before["pass_at_k"]["4"]
    assert data["arms"][arm]["overrides"] == measured["overrides"]
    page = (out / "report" / "index.html").read_text()
    for key in metric_keys:
        image = key.replace("/", "_") + ".png"
        assert image in page and (out / "report" / image).stat().st_size > 1000
    assert "pass_at_k.png" in page and "n=1" in page
    # The run's config records what the arm changed.
    assert (out / arm / "seed-0.yaml").read_text().startswith(f"# experiment arm {arm!r}, seed 0")
    return data


def test_tiny_entropy_collapse_end_to_end_then_resume(tmp_path):
    # One arm of one recipe through the real stack (the nsr-psr arms' expansion is covered by
    # tests/unit/experiment; two experiments at once oversubscribed 2 cores and timed out).
    entropy_out = tmp_path / "entropy-collapse"
    output = _finish(_experiment("entropy-collapse", "grpo", entropy_out), timeout=900)
    assert "report: " in output

    data = _check(entropy_out, "grpo", ["entropy", "reward_mean", "actor/logp_adv_cov", "solved_rate"])
    # The covariance statistic is logged by the learner (learner/step.py) at every step.
    assert all(math.isfinite(v) for _, v in data["runs"][0]["curves"]["actor/logp_adv_cov"])

    # Again: the finished run is skipped (its files untouched), the report rebuilt from them.
    metrics = entropy_out / "grpo" / "seed-0" / "metrics.jsonl"
    stamp = metrics.stat().st_mtime_ns
    output = _finish(_experiment("entropy-collapse", "grpo", entropy_out), timeout=300)
    assert "grpo seed 0: finished earlier" in output and "skipped" in output
    assert metrics.stat().st_mtime_ns == stamp
    assert json.loads((entropy_out / "experiment.json").read_text())["runs"] == data["runs"]


def test_tiny_nsr_psr_two_arms_share_the_seeds_base_evaluation(tmp_path):
    # Two arms of nsr-psr, one after the other through the real stack: the second (nsr) is
    # given the first's evaluation before training instead of sampling the base model again.
    out = tmp_path / "nsr-psr"
    command = [sys.executable, "-m", "outrider.cli.main", "experiment", "nsr-psr", "--scale", "tiny",
               "--arms", "grpo,nsr", "--out", str(out), *TINY]
    output = _finish(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      start_new_session=True), timeout=900)
    assert "report: " in output
    grpo, nsr = out / "grpo" / "seed-0", out / "nsr" / "seed-0"
    assert f"nsr seed 0: the base model's evaluation is {grpo / 'eval_before.json'}'s" in output
    grpo_log = (out / "grpo" / "seed-0.log").read_text()
    assert "evaluating (before)" in grpo_log
    # Progress while it evaluates: a line per quarter of the 4 tasks, before and after training.
    progress = [line.split()[1] for line in grpo_log.splitlines() if line.strip().startswith("evaluated ")]
    assert progress == ["1/4", "2/4", "3/4", "4/4"] * 2
    nsr_log = (out / "nsr" / "seed-0.log").read_text()
    assert "evaluating (before)" not in nsr_log and "evaluating (after)" in nsr_log
    before = json.loads((grpo / "summary.json").read_text())["before"]
    assert json.loads((nsr / "summary.json").read_text())["before"] == before
    data = json.loads((out / "experiment.json").read_text())
    assert list(data["arms"]) == ["grpo", "nsr"]
    # The pooled base counts the shared evaluation once; each arm's after is its own run's.
    base = data["base_pass_at_k"]["4"]
    assert base["n"] == 1 and base["mean"] == before["pass_at_k"]["4"] and base["half"] is None
    for arm, run_dir in (("grpo", grpo), ("nsr", nsr)):
        after = json.loads((run_dir / "summary.json").read_text())["after"]
        assert data["arms"][arm]["final"]["pass@4 after"]["mean"] == after["pass_at_k"]["4"]
        assert [r["step"] for r in _records(run_dir)] == [1, 2]

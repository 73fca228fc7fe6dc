"""`outrider eval` end to end: real env and policy services (HF backend), Redis, a Celery
rollout worker, the built-in `guess-number` environment.

Two tiny checkpoints: `tiny-random-chars` (the base) and a copy with perturbed weights
saved as an HF folder (standing in for "a copy trained a few steps": training one takes
minutes here; the DeepSpeed checkpoint path is tested in test_eval_checkpoints.py). Over
~100 characters a random model often writes a digit, so guesses of 1..10 sometimes win:
the report has correct solutions, perplexities and entropies to show.

The first run is SIGKILLed while it samples; the second (--resume) must sample none of
the (checkpoint, task) pairs the first one stored, counted from the samples files and
from the workers' activity log (which every worker appends to when it starts a task).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from outrider.eval.analysis import SECTIONS
from outrider.eval.report import PLOTS
from outrider.models import resolve_model
from testkit.e2e import TESTS_DIR, descendants
from testkit.policy import perturbed_checkpoint

pytestmark = pytest.mark.slow

N = 8
TASKS = 8


def eval_config(tmp_path: Path, boundary: dict | None = None, **rollout) -> Path:
    config = {
        "kind": "run",
        "name": "evaltest",
        "output_dir": str(tmp_path / "runs"),
        "stack": {"services": ["policy", "env"]},
        "policy": {"backend": "hf", "model": "tiny-random-chars", "dtype": "float32", "http_port": None,
                   "server": {"metrics_port": None}},
        "learner": {"model": "tiny-random-chars"},
        "env": {"builtin_envs": ["guess-number"], "builtin_params": {"guess-number": {"difficulty": "0", "num_test": "16"}}},
        "rollout": {"envs": ["guess-number"], "workers": 1, "groups_per_worker": 1, "sampling": {"max_tokens": 12},
                    "max_episode_tokens": 320, "max_turns": 5, **rollout},
        "evaluation": {"boundary": {"max_entropy_tokens": 64, **(boundary or {})}},
    }
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def eval_process(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "outrider.cli.main", "eval", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait_gone(pids: list[int], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and "Z" not in Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1][:3]]
        if not alive:
            return
        time.sleep(0.1)
    raise AssertionError(f"processes still alive after the kill: {alive}")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("eval")
    config = eval_config(tmp_path)
    perturbed_checkpoint(resolve_model("tiny-random-chars"), tmp_path / "rl", scale=0.3)
    out = tmp_path / "eval"
    args = [str(config), "--checkpoint", "base=tiny-random-chars", "--checkpoint", f"rl={tmp_path / 'rl'}",
            "--n", str(N), "--tasks", str(TASKS), "--k", "4", "--out", str(out)]

    first = eval_process(*args)
    samples_rl = out / "samples" / "rl.jsonl"  # the base is sampled last
    deadline = time.monotonic() + 300
    while len(_lines(samples_rl)) < 2:
        assert first.poll() is None, first.stdout.read()[-4000:]
        assert time.monotonic() < deadline, "no task stored within 300 s"
        time.sleep(0.05)
    everything = descendants(first.pid)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    _wait_gone(everything)
    stored = {(s["checkpoint"], s["env"], s["task_id"]) for name in ("rl", "base") for s in _lines(out / "samples" / f"{name}.jsonl")}
    activity_before = len(_lines(out / "logs" / "activity.jsonl"))

    second = eval_process(*args, "--resume")
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output[-5000:]
    return {"out": out, "stored": stored, "activity_before": activity_before, "output": output}


def test_a_resumed_evaluation_samples_nothing_that_was_stored(evaluated):
    out, stored = evaluated["out"], evaluated["stored"]
    assert 2 <= len(stored) < 2 * TASKS, f"the kill did not land mid-sampling: {len(stored)} stored"
    activity = _lines(out / "logs" / "activity.jsonl")
    started_again = [(a["checkpoint"], a["env"], a["task_id"]) for a in activity[evaluated["activity_before"]:] if a["event"] == "start"]
    assert started_again, "the second run sampled nothing at all"
    assert not set(started_again) & stored, f"re-sampled stored tasks: {sorted(set(started_again) & stored)}"
    # Every (checkpoint, task) is stored exactly once over both runs, with n samples each.
    for name in ("rl", "base"):
        lines = _lines(out / "samples" / f"{name}.jsonl")
        counts = Counter(s["task_id"] for s in lines)
        assert len(counts) == TASKS and set(counts.values()) == {1}, counts
        assert all(s.get("samples", 0) + s.get("errors", 0) == N for s in lines)


def test_the_report_has_every_section_and_plot(evaluated):
    out = evaluated["out"]
    analysis = json.loads((out / "eval.json").read_text())
    assert set(SECTIONS) <= set(analysis)
    assert list(analysis["pass_at_k"]) == ["base", "rl"] and analysis["grid"]["ks"] == [1, 2, 4, 8]
    assert len(analysis["tasks"]) == TASKS
    samples = {name: _lines(out / "samples" / f"{name}.jsonl") for name in ("base", "rl")}
    for name, lines in samples.items():
        totals = analysis["checkpoints"][name]
        assert totals["samples"] == sum(s.get("samples", 0) for s in lines)
        assert totals["correct"] == sum(s.get("correct", 0) for s in lines)
        # pass@N of a task is 1 exactly when it was solved at least once: the curve's last point.
        solved = sum(s.get("correct", 0) > 0 for s in lines) / TASKS
        assert analysis["pass_at_k"][name]["episode"]["value"][-1] == pytest.approx(solved, abs=1e-12)
    assert sum(analysis["checkpoints"][n]["correct"] for n in ("base", "rl")) > 0, "no solution to score"
    scored = sum(analysis["perplexity"]["per_checkpoint"][n]["count"] for n in ("base", "rl"))
    assert scored == sum(len(s.get("solutions", [])) for lines in samples.values() for s in lines) > 0
    assert analysis["entropy"]["forking_threshold"] is not None
    page = (out / "index.html").read_text()
    for plot in PLOTS:
        assert (out / plot).stat().st_size > 1000 and plot in page, plot
    output = evaluated["output"]
    assert "rl vs base" in output and "report: " in output and "pass@4" in output


def test_the_end_of_training_switch_compares_the_base_with_the_final_weights(tmp_path):
    from outrider.config import load_config
    from outrider.eval.runner import boundary_after_training
    from outrider.train.report import render_report

    run = load_config(eval_config(tmp_path, boundary={"enabled": True, "samples": 4, "tasks": 3}))
    assert run.evaluation.boundary.enabled
    perturbed_checkpoint(resolve_model("tiny-random-chars"), run.run_dir / "final", scale=0.3)
    (run.run_dir / "metrics.jsonl").write_text(json.dumps({"step": 1, "reward_mean": 0.5}) + "\n")
    outcome = boundary_after_training(run)
    assert outcome.index == run.run_dir / "eval" / "index.html"
    manifest = json.loads((run.run_dir / "eval" / "manifest.json").read_text())
    assert manifest["base"] == "base" and manifest["n"] == 4 and len(manifest["tasks"]) == 3
    assert manifest["checkpoints"]["base"]["source"] == "tiny-random-chars"
    assert manifest["checkpoints"]["final"]["model"] == str((run.run_dir / "final").resolve())
    assert list(outcome.analysis["pass_at_k"]) == ["base", "final"]
    assert 'href="../eval/index.html"' in render_report(run.run_dir).read_text()


def test_a_run_report_links_the_boundary_report(tmp_path):
    from outrider.train.report import render_report

    run_dir = tmp_path / "run"
    (run_dir / "eval").mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 1, "reward_mean": 0.5}) + "\n")
    assert "../eval/index.html" not in render_report(run_dir).read_text()
    (run_dir / "eval" / "index.html").write_text("<html></html>")
    assert 'href="../eval/index.html"' in render_report(run_dir).read_text()


def test_best_of_search_evaluation_counts_one_search_per_sample(tmp_path):
    """`--search beam`: the reward service (a real, untrained scalar-head PRM) runs beside the
    env service, each of a task's n samples is one search's best answer, and the tokens
    stored are every proposal's (more than the kept answers' own)."""
    from outrider.services.reward.prm import train as prm_train

    tokenizer = prm_train.byte_tokenizer()
    prm = prm_train.save_scorer(prm_train.tiny_scorer(tokenizer, seed=0), tokenizer, tmp_path / "prm", prm_train.TrainSettings(), {})
    config = eval_config(tmp_path, search={"width": 2, "expansions": 2, "max_steps": 2, "step_tokens": 6, "token_budget": 40})
    data = yaml.safe_load(config.read_text())
    data["reward"] = {"prm": {"type": "scalar-head", "model": str(prm), "device": "cpu"}}
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "eval"
    run = eval_process(str(config), "--checkpoint", "base=tiny-random-chars", "--n", "3", "--tasks", "2", "--out", str(out), "--search", "beam")
    output, _ = run.communicate(timeout=600)
    assert run.returncode == 0, output[-5000:]
    assert "best-of-search answer of one beam search" in output
    assert json.loads((out / "manifest.json").read_text())["search"] == "beam"
    assert list(out.glob("logs/**/reward*.log")), "no reward service ran"
    lines = _lines(out / "samples" / "base.jsonl")
    assert len(lines) == 2 and all(s.get("samples", 0) + s.get("errors", 0) == 3 for s in lines)
    assert all(s.get("errors", 0) == 0 for s in lines), [s.get("error_messages") for s in lines]
    for s in lines:
        kept = sum(t["turns"][0]["completion_length"] for t in s.get("solutions", []))
        # Each search proposes 4 first steps then up to 4 more, within 40 tokens: 3 searches
        # generate at least 3 x 4 tokens and at most 3 x 40.
        assert 12 <= int(s["generated_tokens"]) <= 120 and int(s["generated_tokens"]) >= kept
    assert "best-of-search answer of one beam search" in (out / "index.html").read_text()

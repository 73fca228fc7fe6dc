"""bench/eval_rates.py: how bench/eval.py turns what each side left behind into samples/s."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from outrider.proto.v1 import eval_pb2, trajectory_pb2

# bench/ is a folder of scripts, not a package: its modules import each other by bare name.
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import eval_rates  # noqa: E402


def _line(event: str, time: float, checkpoint: str = "base", task: str = "test-00000") -> dict:
    return {"event": event, "checkpoint": checkpoint, "env": "math", "task_id": task, "worker": "h/1", "time": time}


def test_the_window_runs_from_the_first_start_to_the_last_done_of_the_checkpoint():
    activity = [
        _line("start", 100.5, task="t0"), _line("start", 100.2, task="t1"),  # two workers, out of order
        _line("done", 103.0, task="t1"), _line("start", 103.1, task="t2"),
        _line("done", 104.0, task="t0"), _line("done", 106.7, task="t2"),
        # another checkpoint's lines, earlier and later, do not count
        _line("start", 90.0, checkpoint="rl"), _line("done", 200.0, checkpoint="rl"),
    ]
    assert eval_rates.sampling_window(activity, "base") == (100.2, 106.7)


def test_a_retried_task_keeps_its_first_start():
    activity = [_line("start", 10.0), _line("start", 12.0), _line("done", 15.0)]  # first attempt failed
    assert eval_rates.sampling_window(activity, "base") == (10.0, 15.0)


def test_a_log_without_a_done_line_is_an_error_naming_the_checkpoint():
    with pytest.raises(ValueError, match="no done line of checkpoint 'base'"):
        eval_rates.sampling_window([_line("start", 1.0)], "base")
    with pytest.raises(ValueError, match="no start line of checkpoint 'base'"):
        eval_rates.sampling_window([_line("done", 1.0, checkpoint="rl")], "base")


def test_eval_rates_divide_the_stored_counts_by_the_window():
    samples = [
        eval_pb2.TaskSamples(task_id="t0", env="math", samples=32, correct=5, generated_tokens=2000, seconds=3.5),
        eval_pb2.TaskSamples(task_id="t1", env="math", samples=30, errors=2, generated_tokens=1100, seconds=4.0),
    ]
    activity = [_line("start", 50.0), _line("done", 52.0), _line("start", 50.5), _line("done", 54.0)]
    out = eval_rates.eval_rates(samples, activity, "base")
    # window 54.0 - 50.0 = 4 s; 32 + 30 = 62 samples -> 15.5/s; 3100 tokens -> 775/s; 3100 / 62 = 50 tokens each
    assert out["seconds"] == pytest.approx(4.0, abs=1e-12)
    assert out["samples"] == 62 and out["errors"] == 2 and out["tasks"] == 2
    assert out["samples_per_s"] == pytest.approx(15.5, rel=1e-12)
    assert out["generated_tokens_per_s"] == pytest.approx(775.0, rel=1e-12)
    assert out["mean_completion_tokens"] == pytest.approx(50.0, rel=1e-12)
    assert out["task_seconds_sum"] == pytest.approx(7.5, rel=1e-12)  # busy time: more than the window


def test_rates_refuse_an_empty_interval():
    with pytest.raises(ValueError, match="seconds must be > 0"):
        eval_rates.rates(4, 10, 0.0)


def _samples(task: str, *prompts: list[int]) -> eval_pb2.TaskSamples:
    solutions = [trajectory_pb2.Trajectory(prompt_length=len(p), token_ids=[*p, 7, 8, 2]) for p in prompts]
    return eval_pb2.TaskSamples(env="math", task_id=task, samples=4, correct=len(prompts), solutions=solutions)


def _key(samples) -> str:
    return f"{samples.env}/{samples.task_id}"


def test_the_prompt_check_counts_matches_and_names_every_difference():
    prompts = {"math/t0": [1, 2, 3], "math/t1": [1, 2, 4], "math/t2": [5]}
    same = eval_rates.prompt_check(prompts, [_samples("t0", [1, 2, 3], [1, 2, 3]), _samples("t1"), _samples("t2", [5])], _key)
    assert same == {"tasks_checked": 2, "solutions_checked": 3, "tasks": 3, "mismatches": []}

    # one token differs; a prompt one id shorter (prompt_length cuts it); a task the bench does not have
    differ = eval_rates.prompt_check(prompts, [_samples("t0", [1, 2, 9]), _samples("t1", [1, 2]), _samples("t9", [1])], _key)
    assert differ["solutions_checked"] == 2
    assert len(differ["mismatches"]) == 3
    assert differ["mismatches"][0].startswith("math/t0 solution 0")
    assert "2 ids differs from the bench's 3 ids" in differ["mismatches"][1]
    assert differ["mismatches"][2].startswith("math/t9: sampled by outrider eval but not in the bench's task list")


def test_progress_rate_reads_the_last_line_of_its_label():
    output = (
        "serving base (smollm2-135m-instruct) ...\n"
        "  base [1/1]: 0/16 tasks, 0 samples, 0.0 samples/s, 0 episode errors\n"
        "  rl [1/2]: 16/16 tasks, 512 samples, 9.9 samples/s, 0 episode errors\n"
        "  base [1/1]: 7/16 tasks, 224 samples, 5.1 samples/s, 0 episode errors\r"
        "  base [1/1]: 16/16 tasks, 512 samples, 6.25 samples/s, 0 episode errors\n"
        "scoring 40 correct solutions under base ...\n"
    )
    assert eval_rates.progress_rate(output, "base [1/1]") == 6.25
    assert eval_rates.progress_rate(output, "rl [1/2]") == 9.9
    assert eval_rates.progress_rate(output, "other [1/1]") is None


def test_summarize_takes_medians_per_variant_and_the_ratio_of_medians():
    runs = [
        {"variant": "a", "samples_per_s": 8.0, "generated_tokens_per_s": 400.0, "samples": 100, "generated_tokens": 5000},
        {"variant": "b", "samples_per_s": 10.0, "generated_tokens_per_s": 520.0, "samples": 100, "generated_tokens": 5200},
        {"variant": "a", "samples_per_s": 9.0, "generated_tokens_per_s": 460.0, "samples": 100, "generated_tokens": 5100},
        {"variant": "b", "samples_per_s": 11.0, "generated_tokens_per_s": 500.0, "samples": 100, "generated_tokens": 4500},
        {"variant": "a", "samples_per_s": 7.0, "generated_tokens_per_s": 300.0, "samples": 100, "generated_tokens": 4300},
        {"variant": "b", "samples_per_s": 12.0, "generated_tokens_per_s": 600.0, "samples": 100, "generated_tokens": 5000},
    ]
    out = eval_rates.summarize(runs)
    # medians: a {7, 8, 9} -> 8, b {10, 11, 12} -> 11; tokens a {300, 400, 460} -> 400, b {500, 520, 600} -> 520
    assert out["a"]["samples_per_s"] == [8.0, 9.0, 7.0]
    assert out["a"]["median_samples_per_s"] == 8.0 and out["b"]["median_samples_per_s"] == 11.0
    assert out["ratio_samples_per_s"] == pytest.approx(8 / 11, rel=1e-12)
    assert out["ratio_generated_tokens_per_s"] == pytest.approx(400 / 520, rel=1e-12)
    # mean completion tokens: a (50 + 51 + 43) / 3 = 48, b (52 + 45 + 50) / 3 = 49
    assert out["a"]["mean_completion_tokens"] == pytest.approx(48.0, rel=1e-12)
    assert out["b"]["mean_completion_tokens"] == pytest.approx(49.0, rel=1e-12)
    table = eval_rates.table(out)
    assert "| (a) `outrider eval` | **8.00** | 8.00, 9.00, 7.00 | 400.0 | 48.0 |" in table
    assert "(a) / (b) samples/s = **0.73**" in table

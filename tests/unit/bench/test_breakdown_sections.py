"""bench/breakdown_sections.py: sequences in flight, CPU per component, RPCs per turn."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

# bench/ is a folder of scripts, not a package: its modules import each other by bare name.
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import breakdown_sections as sections  # noqa: E402

# Two groups: the first plays two turns back to back (8 sequences, then the same 8
# again), the second one turn of 4 sequences overlapping the first's second turn.
GROUPS = [
    {"episodes": 8, "turns": 16, "generate_calls": [[0.0, 2.0, 8], [2.0, 4.0, 8]],
     "rpcs": {"policy/Generate": 2, "env/Step": 16, "env/CreateSession": 8}},
    {"episodes": 4, "turns": 4, "generate_calls": [[2.0, 6.0, 4]],
     "rpcs": {"policy/Generate": 1, "env/Step": 4, "env/CreateSession": 4}},
]


def test_in_flight_series_adds_a_call_at_its_start_and_removes_it_at_its_end():
    # t=2: the first group's first call ends as its second starts (8 − 8 + 8) and the
    # second group starts (+4): 12, not 20 — equal times must not count a call twice.
    assert sections.in_flight_series(GROUPS) == [(0.0, 8), (2.0, 12), (4.0, 4), (6.0, 0)]


def test_level_stats_are_time_weighted_over_the_window():
    series = sections.in_flight_series(GROUPS)
    # Window [1, 8]: 8 for 1 s, 12 for 2 s, 4 for 2 s, 0 for 2 s (7 s).
    stats = sections.level_stats(series, 1.0, 8.0)
    assert stats["mean"] == pytest.approx((8 * 1 + 12 * 2 + 4 * 2) / 7, abs=1e-12)
    # Sorted levels 0 (2 s), 4 (2 s), 8, 12: 4 s ≥ 3.5 s is reached at level 4.
    assert stats["median"] == 4
    assert stats["max"] == 12
    assert stats["idle_share"] == pytest.approx(2 / 7, abs=1e-12)
    # Before the first call nothing is in flight: [−2, 2] is 0 for 2 s, then 8 for 2 s.
    early = sections.level_stats(series, -2.0, 2.0)
    assert early == {"mean": 4.0, "median": 0, "max": 8, "idle_share": 0.5}


def test_cpu_by_component_counts_the_intervals_inside_the_window():
    driver = {"ppid": "0", "cmd": "/venv/bin/python -m outrider.cli.main train run.yaml --overwrite"}
    samples = [
        {"time": 0.0, "cpu": {"1": 1.0, "2": 5.0},
         "new": {"1": driver, "2": {"ppid": "1", "cmd": "python -m outrider.services.policy.main --config p.yaml"}}},
        {"time": 1.0, "cpu": {"1": 1.5, "2": 6.0, "3": 0.5}, "new": {"3": {"ppid": "2", "cmd": "VLLM::EngineCore"}}},
        {"time": 2.0, "cpu": {"1": 1.7, "2": 6.2, "3": 1.5, "4": 0.4, "5": 0.3},
         "new": {"4": {"ppid": "2", "cmd": "python -c from multiprocessing.spawn import spawn_main"},
                 "5": {"ppid": "1", "cmd": "sleep 1"}}},
        {"time": 3.0, "cpu": {"1": 2.0, "2": 6.4, "3": 2.5, "4": 0.8, "6": 2.0},
         "new": {"6": {"ppid": "1", "cmd": "python -m torch.distributed.run --nproc-per-node=1 -m outrider.learner.main r.yaml"}}},
    ]
    cpu, wall = sections.cpu_by_component(samples, 1.0, 3.0)
    # Intervals 1→2 and 2→3 only. Policy: the service 0.2 + 0.2, its engine 1.0 + 1.0, the
    # spawned helper (no pattern: its parent's component) 0.4 from nothing + 0.4. The driver
    # 0.2 + 0.3. `sleep` under the driver is "other" (0.3; its last interval is lost when
    # it exits). The learner appears in the last interval: all its 2.0 s fall there.
    assert wall == 2.0
    assert cpu == pytest.approx({"policy": 3.2, "driver": 0.5, "other": 0.3, "learner": 2.0}, abs=1e-9)
    report = sections.cpu_report(samples, 1.0, 3.0)
    assert list(report) == ["policy", "learner", "driver", "other"]  # the table's order, then "other"
    assert report["policy"]["cores"] == pytest.approx(1.6, abs=1e-9)
    assert report["policy"]["share"] == pytest.approx(3.2 / 6.0, abs=1e-9)
    assert report["learner"]["share"] == pytest.approx(2.0 / 6.0, abs=1e-9)
    assert sum(r["share"] for r in report.values()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    ("cmd", "component"),
    [
        ("/v/bin/python -m celery -A outrider.rollout.worker worker --pool=threads", "rollout workers"),
        # Celery renames its processes (setproctitle) once it runs.
        ("[celeryd: rollout0@vm:MainProcess] -active- (-A outrider.rollout.worker worker --pool=threads", "rollout workers"),
        ("VLLM::EngineCore", "policy"),
        ("/v/bin/valkey-server 127.0.0.1:41233", "redis"),
        ("python -m outrider.services.env.main --config e.yaml", "env"),
        ("python -m outrider.services.curriculum.main --config c.yaml", "curriculum"),
        ("python -m outrider.services.reward.main --config r.yaml", "reward"),
        ("/usr/bin/python3 -u -m outrider.learner.main run.yaml", "learner"),
        ("bash -c true", "other"),
    ],
)
def test_classify_by_command_line(cmd, component):
    assert sections.classify("7", {"7": {"ppid": "1", "cmd": cmd}}) == component


def test_cpu_sampler_walks_the_process_tree():
    child = "import subprocess, sys, time; subprocess.Popen(['sleep', '3']); time.sleep(3)"
    process = subprocess.Popen([sys.executable, "-c", child])
    try:
        sampler = sections.CpuSampler(process.pid, interval_s=0.1).start()
        time.sleep(0.8)
        samples = sampler.stop()
    finally:
        process.kill()
        process.wait()
    seen = {pid: info for s in samples for pid, info in s["new"].items()}
    assert seen[str(process.pid)]["cmd"].startswith(sys.executable)
    sleeps = [pid for pid, info in seen.items() if info["cmd"] == "sleep 3"]
    assert len(sleeps) == 1 and seen[sleeps[0]]["ppid"] == str(process.pid)
    assert all(str(process.pid) in s["cpu"] for s in samples)


def test_rpcs_per_turn_divides_by_the_episode_turns_of_the_groups():
    rpcs = sections.rpcs_per_turn(GROUPS + [{"episodes": 4, "turns": 0}])  # no turns: not counted
    assert rpcs["groups"] == 2
    assert rpcs["turns_per_episode"] == 20 / 12
    assert rpcs["kinds"]["env/Step"] == {"per_group": 10.0, "per_turn": 1.0}
    assert rpcs["kinds"]["policy/Generate"] == {"per_group": 1.5, "per_turn": 3 / 20}
    assert rpcs["kinds"]["env/CreateSession"] == {"per_group": 6.0, "per_turn": 12 / 20}
    assert rpcs["total_per_turn"] == (3 + 20 + 12) / 20

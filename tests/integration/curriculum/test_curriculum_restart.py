"""A curriculum service process is stopped and started again: it continues where it was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from outrider.cli.main import app as cli
from outrider.config import dump_yaml
from outrider.config.curriculum import ExclusionConfig, LearnabilityStrategy
from outrider.clients.curriculum import CurriculumClient
from outrider.services.curriculum.strategies import Curriculum
from outrider.services.curriculum.table import TaskInfo
from outrider.stack import wait_serving

from .test_curriculum_service import service_config, write_dataset


def start_service(config_path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "outrider.services.curriculum.main", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    for line in process.stdout:
        if line.startswith("OUTRIDER_READY"):
            port = dict(part.split("=", 1) for part in line.split()[1:])["port"]
            address = f"127.0.0.1:{port}"
            wait_serving(address, timeout_s=30)
            return process, address
    process.wait()
    pytest.fail(f"curriculum service exited with {process.returncode} before it was ready")


def stop_service(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


def test_state_survives_a_process_restart(redis_url, bus_prefix, tmp_path):
    cfg = service_config(redis_url, bus_prefix, write_dataset(tmp_path / "tasks.jsonl"), exclusion=ExclusionConfig(enabled=True))
    config_path = tmp_path / "curriculum.yaml"
    config_path.write_text(dump_yaml(cfg))
    # What an uninterrupted curriculum does with the same calls.
    twin = Curriculum([TaskInfo("math", f"q{i:02d}", float(i % 2)) for i in range(20)], LearnabilityStrategy(), ExclusionConfig(enabled=True), seed=3)

    def exercise(client: CurriculumClient, rewards: list[float]) -> None:
        tasks = client.next_tasks(6)
        wanted = twin.sample(6)
        assert [t.id for t in tasks] == [twin.table.tasks[r].task_id for r in wanted]
        for task, row in zip(tasks, wanted, strict=True):
            client.report(task.env, task.id, rewards)
            twin.report(row, rewards)
            twin.after_reports([row])

    process, address = start_service(config_path)
    try:
        with CurriculumClient(address) as client:
            client.wait_ready(30)
            exercise(client, [1.0, 0.0, 1.0])
            before = client.state(max_tasks=20)
    finally:
        stop_service(process)
    process, address = start_service(config_path)
    try:
        with CurriculumClient(address) as client:
            client.wait_ready(30)
            after = client.state(max_tasks=20)
            assert after == before
            assert after.total_attempts == 18
            # The restarted process continues the same random sequence and statistics.
            exercise(client, [1.0, 1.0, 1.0])
            final = client.state(max_tasks=20)
        shown = CliRunner().invoke(cli, ["curriculum", "state", "--address", address, "--max-tasks", "3", "--json"])
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.output)["total_attempts"] == "36"  # uint64 is a string in proto JSON
    finally:
        stop_service(process)
    unreachable = CliRunner().invoke(cli, ["curriculum", "state", "--address", address, "--timeout", "1"])
    assert unreachable.exit_code == 1 and "UNAVAILABLE" in unreachable.output
    assert final.total_attempts == 36
    assert final.num_excluded == int(twin.excluded().sum()) > 0
    served = {(t.task_id): (t.attempts, round(t.weight, 12)) for t in final.tasks if t.attempts}
    expected = {twin.table.tasks[r].task_id: (int(twin.table.attempts[r]), round(float(twin.weights()[r]), 12)) for r in twin.table.touched_rows()}
    assert served == expected
    assert json.loads(json.dumps(twin.global_state()))["clock"] == 12

"""bench/vs_trl.py gives TRL and Outrider identical prompts and rewards.

The TRL side's data and reward are `vs_trl_trl.dataset_rows` and
`vs_trl_trl.sum_correct` — the very objects its GRPOTrainer gets, importable
without TRL (CI does not build TRL's venv). The Outrider side is what a real
env service, started as `outrider train` starts it (`outrider serve env` with
bench/ on PYTHONPATH and the EnvSpec the bench writes), serves over gRPC:
the first observation of each task and the reward of each step.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
BENCH = REPO_ROOT / "bench"
# bench/ is a folder of scripts, not a package: its modules import each other by bare name.
sys.path.insert(0, str(BENCH))

import vs_trl_env  # noqa: E402
import vs_trl_trl  # noqa: E402
import vs_trl_workload as workload  # noqa: E402

from outrider.clients.env import EnvClient  # noqa: E402

WORK = workload.Workload(model="tiny-random", num_prompts=64, seed=3)
COMPLETIONS = [
    "{answer}",
    "The answer is {answer}.",
    "{a} + {b} = {answer}",
    "{a} + {b} = {wrong}",
    "{wrong}",
    "I cannot compute that.",
    "",
    "{answer}.0",
    "Answer: {answer}, or maybe {wrong}",
]


@pytest.fixture(scope="module")
def served_env(tmp_path_factory):
    """`outrider serve env` with the bench's EnvSpec, as `outrider train` starts it; yields a client."""
    folder = tmp_path_factory.mktemp("vs-trl-env")
    spec = folder / "vs-trl-sum.yaml"
    spec.write_text(yaml.safe_dump(vs_trl_env.env_spec(WORK)))
    config = folder / "env.yaml"
    config.write_text(yaml.safe_dump({
        "kind": "env",
        "server": {"port": 0, "metrics_port": None},
        "builtin_envs": [],
        "spec_files": [str(spec)],
    }))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, "-m", "outrider.cli.main", "serve", "env", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT, env=env,
    )
    line = process.stdout.readline()
    if not line.startswith("OUTRIDER_READY"):
        process.kill()
        pytest.fail(f"env service did not start: {line!r} {process.stderr.read()[-2000:]}")
    fields = dict(part.split("=", 1) for part in line.split()[1:])
    client = EnvClient(f"127.0.0.1:{fields['port']}")
    yield client
    client.close()
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0


def test_the_env_serves_exactly_the_trl_datasets_prompts(served_env):
    rows = vs_trl_trl.dataset_rows(WORK)
    tasks = served_env.list_tasks(vs_trl_env.NAME, split="train", limit=1000, include_reference=True)
    assert [t.id for t in tasks] == [f"train-{i:05d}" for i in range(WORK.num_prompts)] and len(rows) == len(tasks)
    for task, row in zip(tasks, rows, strict=True):
        session = served_env.create_session(vs_trl_env.NAME, task.id, seed=0)
        served = [(m.role, m.content.encode()) for m in session.observation.messages]
        trl = [(m["role"], m["content"].encode()) for m in row["prompt"]]
        assert served == trl, task.id  # byte for byte, one user message, no system message
        assert task.reference == str(row["answer"])
        served_env.close_session(session.session_id)


def test_the_env_rewards_exactly_as_the_trl_reward_function(served_env):
    rows = vs_trl_trl.dataset_rows(WORK)
    problems = WORK.problems()
    seen = set()
    for index in range(0, WORK.num_prompts, 8):
        problem, row = problems[index], rows[index]
        texts = [c.format(a=problem.a, b=problem.b, answer=problem.answer, wrong=problem.answer + 1) for c in COMPLETIONS]
        trl_rewards = vs_trl_trl.sum_correct(
            prompts=[row["prompt"]] * len(texts),
            completions=[[{"role": "assistant", "content": text}] for text in texts],
            answer=[row["answer"]] * len(texts),
        )
        served_rewards = []
        for text in texts:
            session = served_env.create_session(vs_trl_env.NAME, f"train-{index:05d}", seed=0)
            reply = served_env.step(session.session_id, text)
            assert reply.HasField("reward") and reply.done, text  # one turn, a reward, no error
            served_rewards.append(reply.reward)
            served_env.close_session(session.session_id)
        assert served_rewards == trl_rewards, problem
        seen |= set(trl_rewards)
    assert seen == {0.0, 1.0}  # the cases exercise both outcomes


def test_trl_reward_function_reads_plain_text_completions_too():
    row = vs_trl_trl.dataset_rows(WORK)[0]
    answer = row["answer"]
    assert vs_trl_trl.sum_correct(prompts=[row["prompt"]] * 2, completions=[f"{answer}", "no"], answer=[answer] * 2) == [1.0, 0.0]

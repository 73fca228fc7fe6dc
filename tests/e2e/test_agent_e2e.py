"""Unmodified agent programs trained end to end: `outrider train` on the calculator agents
(Python with the `openai` client, Node.js with fetch), whose every chat call goes through a
captured session of the policy; the learner trains on the captured tokens.

The model is the tiny tool-calling one (testkit.tool_model): tiny-random weights with
Qwen2.5's chat template, so the agents' tools render. What it answers is noise; what is
checked is that the agents' own calls became the trained trajectories: the step's
sample episodes carry the agent's system prompt (not the math environment's), and the
worker's record says how each session's calls were assembled.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from testkit.e2e import run_metrics, toy_run_config, train_process
from testkit.tool_model import build_tool_model

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
AGENT_SYSTEM = "You may call the calculate tool"  # examples/agents/calculator, both agents


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_tool_model(tmp_path_factory)


@pytest.mark.parametrize("agent", ["calculator-agent", "calculator-agent-node"])
def test_an_agent_program_is_trained_on_its_captured_calls(tmp_path, model, agent):
    if agent.endswith("node") and shutil.which("node") is None:
        pytest.skip("node is not installed (the Node.js agent needs it)")
    # The example's spec, with short replies: the tiny model's context is small.
    spec = yaml.safe_load((EXAMPLES / "envs" / f"{agent}.yaml").read_text())
    spec["agent"]["directory"] = str(EXAMPLES / "agents" / "calculator")
    spec["agent"]["env"] = {"AGENT_MAX_CALLS": "2", "AGENT_MAX_TOKENS": "24"}
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(spec))
    config = toy_run_config(
        tmp_path, agent,
        policy={"model": str(model), "http_port": 0},
        env={"builtin_envs": ["math"], "spec_files": [str(tmp_path / "agent.yaml")]},
        rollout={"envs": [agent], "group_size": 2, "workers": 1, "groups_per_worker": 2},
        learner={"model": str(model), "groups_per_step": 2, "max_steps": 1},
    )
    process = train_process(config)
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output[-4000:]
    run_dir = tmp_path / "runs" / agent
    [step] = run_metrics(run_dir)
    assert step["step"] == 1
    records = [json.loads(line) for line in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    played = [r for r in records if r.get("sent")]
    assert len(played) >= 2
    for record in played:
        assert len(record["agent_sessions"]) == 2 and all(" calls -> " in s for s in record["agent_sessions"])
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert samples and all(AGENT_SYSTEM in s["prompt"] for s in samples), samples[0]["prompt"][-600:]

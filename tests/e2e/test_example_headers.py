"""Every example's header is a script that works (issue 21, item 1).

The commands in an example's leading comment — lines `#   outrider ...` or
`#   python ...` — are extracted and run in order, in a copy of examples/ inside a
temporary folder (so `runs/` and relative paths land there), at tiny scale: the
test model instead of SmolLM2 and one step instead of a hundred. What the test adds
to a command is exactly this table, nothing else, so a header that drifts from the
CLI (a renamed flag, a wrong path, a missing step) fails here:

* `outrider train CONFIG`: `--no-report` and the overrides in TINY_RUN; for a run of
  an agent environment (an `agent` spec in its `env.spec_files`, docs/agents.md), those
  in TINY_AGENT_RUN: TINY_RUN without the model and `policy.http_port=null` (its model is
  the folder its header made, and its agents call the policy's HTTP port), with
  `policy.http_port=0` (a free port);
* `python ...` (not a server): the word `smollm2-135m-instruct` becomes `tiny-random`
  (an agent example's header makes its tool-rendering model from it);
* `outrider sft|dpo CONFIG`: the overrides in TINY_OFFLINE;
* `outrider reward make-dataset`: `--train 40 --test 10`; `outrider reward train`:
  `--steps 3` instead of the header's;
* `outrider serve SERVICE ...` and the example environment servers (`python -m
  ...remote_counter`, `...openenv_guess`): started in the background until they print
  that they are ready, stopped at the end;
* `HOST:PORT` (the header's placeholder for an env service) becomes the address of
  the `outrider serve env` the test starts for it.

What a tiny agent run proves: tiny-random (with the tool-rendering template its header
gives it) answers noise, so its rewards are mostly 0 and say nothing; but the run's one
step completes only if some episode of the group was trained, and an agent episode is
trained only when the agent program ran in the sandbox, called the policy through its
captured session (the env service's gateway is the run's HTTP port), with the example's
tools rendered, and its calls were assembled from the session store: an episode without
a captured call is an infrastructure failure, never a reward.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (REPO / "examples").rglob("*.yaml"))
COMMAND = re.compile(r"^#\s{2,}((?:outrider|python) .+?)\s*$")

TINY_RUN = [
    "policy.model=tiny-random", "learner.model=tiny-random", "policy.backend=hf", "policy.http_port=null",
    "learner.max_steps=1", "learner.groups_per_step=1", "learner.metrics_port=null", "rollout.group_size=2",
    "rollout.workers=1", "rollout.sampling.max_tokens=8", "evaluation.enabled=false",
    "learner.algorithm.dynamic_sampling=false", "learner.report_to=[]",
]
TINY_AGENT_RUN = [o for o in TINY_RUN if o.split("=")[0] not in ("policy.model", "learner.model", "policy.http_port")]
TINY_AGENT_RUN.append("policy.http_port=0")
TINY_OFFLINE = ["model=tiny-random", "max_steps=1", "batch_size=2"]
BACKGROUND_SERVERS = (["-m", "outrider.envs.examples.remote_counter"], ["-m", "outrider.envs.examples.openenv_guess"])
READY = re.compile(r"OUTRIDER_READY service=(\w+) port=(\d+)|REMOTE_ENV_READY port=(\d+)")


def header_commands(path: Path) -> list[str]:
    commands = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        if match := COMMAND.match(line):
            commands.append(match.group(1))
    return commands


def trains_an_agent(config: Path, cwd: Path) -> bool:
    """Whether a run config's `env.spec_files` (relative to where it runs, as `outrider train`
    reads them) hold an `agent` spec."""
    env = (yaml.safe_load(config.read_text()) or {}).get("env")
    specs = [cwd / spec for spec in (env.get("spec_files") if isinstance(env, dict) else None) or ()]
    return any("agent" in (yaml.safe_load(spec.read_text()) or {}) for spec in specs if spec.is_file())


def test_the_examples_with_commands_are_the_ones_expected():
    """The extraction itself: a header whose commands stop matching the pattern would
    silently drop out of the test below."""
    with_commands = {str(p.relative_to(REPO / "examples")) for p in EXAMPLES if header_commands(p)}
    assert with_commands == {
        "curriculum-service.yaml", "env-service.yaml", "reward-service.yaml", "grpo-clipcov-python-tool.yaml",
        "grpo-python-tool-cpu.yaml", "grpo-calculator-agent.yaml",
        "grpo-math-retries.yaml", "grpo-math.yaml", "ppo-guess-number-prm.yaml", "self-play-nim.yaml", "envs/counter-remote.yaml",
        "grpo-openenv-guess.yaml", "envs/guess-openenv.yaml",
        "envs/math-easy.yaml", "offline/dpo.yaml", "offline/sft.yaml",
    }
    assert header_commands(REPO / "examples" / "ppo-guess-number-prm.yaml")[-1] == "outrider train examples/ppo-guess-number-prm.yaml"


class Shell:
    """Runs a header's commands in `cwd`, keeping background services until closed."""

    def __init__(self, cwd: Path):
        self.cwd = cwd
        self.background: list[subprocess.Popen] = []
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]),
                    "HF_HUB_OFFLINE": "1"}
        self._env_address: str | None = None

    def _argv(self, command: str) -> list[str]:
        words = command.split()
        if words[0] == "outrider":
            return [sys.executable, "-m", "outrider.cli.main", *words[1:]]
        assert words[0] == "python"
        return [sys.executable, *words[1:]]

    def env_address(self) -> str:
        if self._env_address is None:
            port = self.start("outrider serve env")
            self._env_address = f"127.0.0.1:{port}"
        return self._env_address

    def start(self, command: str, timeout: float = 180) -> int:
        process = subprocess.Popen(self._argv(command), cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.background.append(process)
        deadline = time.monotonic() + timeout
        lines = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                pytest.fail(f"{command!r} exited ({process.wait()}) before it was ready:\n" + "".join(lines[-40:]))
            lines.append(line)
            if match := READY.search(line):
                # Keep draining its output so a chatty service never blocks on a full pipe.
                subprocess.Popen(["cat"], stdin=process.stdout, stdout=subprocess.DEVNULL)
                return int(match.group(2) or match.group(3))
        pytest.fail(f"{command!r} not ready within {timeout} s:\n" + "".join(lines[-40:]))

    def run(self, command: str) -> None:
        words = command.split()
        if "HOST:PORT" in command:
            command = command.replace("HOST:PORT", self.env_address())
        if words[:2] == ["outrider", "serve"] or words[1:3] in BACKGROUND_SERVERS:
            self.start(command)
            return
        argv = self._argv(command)
        if words[:2] == ["outrider", "train"]:
            argv += ["--no-report", *(TINY_AGENT_RUN if trains_an_agent(self.cwd / words[2], self.cwd) else TINY_RUN)]
        elif words[0] == "python":
            argv = ["tiny-random" if word == "smollm2-135m-instruct" else word for word in argv]
        elif words[:2] in (["outrider", "sft"], ["outrider", "dpo"]):
            argv += TINY_OFFLINE
        elif words[:3] == ["outrider", "reward", "make-dataset"]:
            argv += ["--train", "40", "--test", "10"]
        elif words[:3] == ["outrider", "reward", "train"]:
            argv = _drop_option(self._argv(command), "--steps") + ["--steps", "3"]
        done = subprocess.run(argv, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command!r} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    def close(self) -> None:
        for process in reversed(self.background):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.background:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _drop_option(argv: list[str], option: str) -> list[str]:
    out, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word == option:
            skip = True
        else:
            out.append(word)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("example", [p for p in EXAMPLES if header_commands(p)], ids=lambda p: str(p.relative_to(REPO / "examples")))
def test_the_header_commands_run_as_written(example, tmp_path):
    # An agent's folder must be readable by the sandbox's own uid: not under pytest's 0700 tmp_path.
    cwd = Path(tempfile.mkdtemp(prefix="outrider-example-")) if trains_an_agent(example, REPO) else tmp_path
    cwd.chmod(0o755)
    shutil.copytree(REPO / "examples", cwd / "examples")
    shell = Shell(cwd)
    try:
        for command in header_commands(example):
            shell.run(command)
    finally:
        shell.close()
        if cwd != tmp_path:
            shutil.rmtree(cwd, ignore_errors=True)

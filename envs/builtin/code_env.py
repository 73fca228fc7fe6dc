"""`code`: write a Python function; hidden unit tests run in the sandbox; retries.

Problems ship as data (data/code_problems.json: a description, a signature,
a reference solution and hidden tests as (call, expected) pairs). The policy
answers with a ```python block (or bare code starting with `def`/`import`);
its code runs in the sandbox under a harness that evaluates every hidden test.
All tests pass: reward 1, done. Otherwise reward 0 and feedback naming up to two
failing tests, and another try until max_turns. process_score = fraction of
tests passed.

The harness (`outrider.envs.code_harness`, shared with the reward service's code
verifier) reads the tests and a random nonce from a file it deletes before
importing the solution, and reports results on a line prefixed by the nonce,
so the solution can neither read the expected values from disk nor print fake
results (it could still inspect the harness's memory: this is a mitigation).

Params: `difficulty` ("0"-"2", range, list or "all").
"""

from __future__ import annotations

import functools
import json
from importlib import resources

from outrider.envs.builtin.common import check_split, difficulty_levels
from outrider.envs.code_harness import extract_code, harness_files, read_outcomes
from outrider.envs.interface import Environment, Message, StepResult, Task, TaskNotFound
from outrider.envs.sandbox import LimitHit
from outrider.proto.v1 import common_pb2, env_pb2

NAME = "code"
MAX_LEVEL = 2
SYSTEM_PROMPT = (
    "Write the Python function the user asks for. Hidden unit tests will check it. "
    "Reply with the complete function in a ```python code block."
)

@functools.lru_cache(maxsize=1)
def load_problems() -> tuple[dict, ...]:
    text = resources.files("outrider.envs.builtin").joinpath("data/code_problems.json").read_text()
    return tuple(json.loads(text)["problems"])


def problem_task(problem: dict) -> Task:
    reference = {"entry_point": problem["signature"].split("(")[0], "tests": problem["tests"], "solution": problem["solution"]}
    return Task(
        id=f"{problem['split']}-{problem['slug']}",
        split=problem["split"],
        difficulty=float(problem["difficulty"]),
        preview=problem_prompt(problem),
        reference=json.dumps(reference),
    )


def problem_prompt(problem: dict) -> str:
    call, expected = problem["tests"][0]
    return (
        f"Write a Python function `{problem['signature']}`.\n{problem['description']}\n"
        f"Example: {call} == {expected}"
    )


class CodeEnv(Environment):
    needs_sandbox = True

    def __init__(self, params=None, context=None):
        super().__init__(params, context)
        levels = set(difficulty_levels(self.params, MAX_LEVEL))
        self._tasks = {problem_task(p).id: (problem_task(p), p) for p in load_problems() if p["difficulty"] in levels}
        self.problem: dict | None = None

    @classmethod
    def default_spec(cls) -> env_pb2.EnvSpec:
        return env_pb2.EnvSpec(
            name=NAME,
            version="1.0.0",
            description="Write a Python function; hidden unit tests run in the sandbox; failing tests come back as feedback.",
            python=env_pb2.PythonEntryPoint(entry_point="outrider.envs.builtin.code_env:CodeEnv"),
            max_turns=3,
            sandbox=common_pb2.SandboxLimits(wall_time_s=10, cpu_time_s=10),
            reward=env_pb2.RewardSpec(max_reward=1.0, process_signals=True),
        )

    def tasks(self, split: str) -> list[Task]:
        split = check_split(split)
        return [task for task, _ in self._tasks.values() if task.split == split]

    async def reset(self, task_id: str, seed: int) -> list[Message]:
        self.require_sandbox()
        if task_id not in self._tasks:
            raise TaskNotFound(f"task {task_id!r} does not exist (ids look like 'train-fizzbuzz'; see ListTasks)")
        task, self.problem = self._tasks[task_id]
        return [Message("system", SYSTEM_PROMPT), Message("user", task.preview)]

    async def step(self, action: str) -> StepResult:
        code = extract_code(action)
        if code is None:
            feedback = "I found no code in your reply. Put the complete function in a ```python code block."
            return StepResult([Message("user", feedback)], reward=0.0, done=False, process_score=0.0, metrics={"no_code": 1.0})
        outcomes, problem_with_run = await self.run_tests(code)
        total = len(self.problem["tests"])
        passed = sum(1 for ok, _ in outcomes if ok)
        metrics = {"tests_passed": float(passed), "tests_total": float(total)}
        if passed == total:
            return StepResult([], reward=1.0, done=True, solved=True, process_score=1.0, metrics=metrics)
        failures = [message for ok, message in outcomes if not ok][:2]
        lines = [problem_with_run] if problem_with_run else [f"{total - passed} of {total} hidden tests failed, for example:"]
        lines += [f"- {message}" for message in failures]
        lines.append("Fix the function and reply with the complete corrected code.")
        return StepResult([Message("user", "\n".join(lines))], reward=0.0, done=False, process_score=passed / total, metrics=metrics)

    async def run_tests(self, code: str) -> tuple[list[tuple[bool, str]], str]:
        """[(passed, failure message)] per hidden test, and a message when the run itself failed."""
        files, nonce = harness_files(code, self.problem["tests"])
        result = await self.require_sandbox().arun(files, self.context.sandbox_limits)
        outcomes = read_outcomes(result.stdout, nonce)
        if outcomes is not None:
            return outcomes, ""
        total = len(self.problem["tests"])
        if result.limit_hit is not LimitHit.NONE:
            why = f"Your code was stopped: {result.limit_hit.name.lower().replace('_', ' ')} limit reached."
        else:
            why = f"Your program ended (exit code {result.exit_code}) before the tests finished. stderr: {result.stderr[-300:]}"
        return [(False, why)] * total, why

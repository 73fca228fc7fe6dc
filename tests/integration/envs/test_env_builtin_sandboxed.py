"""`code` and `python-tool` with scripted policies and a real sandbox."""

from __future__ import annotations

import asyncio
import json

import pytest

from outrider.envs.builtin.code_env import CodeEnv, load_problems
from outrider.envs.builtin.python_tool_env import PythonToolEnv
from outrider.envs.episode import Episode
from outrider.envs.interface import EnvContext, ToolStatus
from outrider.envs.sandbox import LimitHit
from outrider.envs.tools import format_call
from outrider.proto.v1 import common_pb2

pytestmark = pytest.mark.sandbox

FAST_LIMITS = common_pb2.SandboxLimits(wall_time_s=3.0, cpu_time_s=1.0)


def fenced(code: str) -> str:
    return f"Here is my solution:\n```python\n{code}```"


async def start(env, task_id: str, max_turns: int) -> Episode:
    episode = Episode(env, max_turns)
    await episode.reset(task_id, 0)
    return episode


# --- code ---------------------------------------------------------------------------


@pytest.fixture
def code_env(env_sandbox):
    return CodeEnv(context=EnvContext(sandbox=env_sandbox, sandbox_limits=FAST_LIMITS))


async def test_code_correct_solution_earns_full_reward(code_env):
    task = next(t for t in code_env.tasks("train") if t.id == "train-fizzbuzz")
    episode = await start(code_env, task.id, 3)
    step = await episode.step(fenced(json.loads(task.reference)["solution"]))
    assert step.reward == 1.0 and step.done and not step.truncated
    assert step.result.metrics == {"tests_passed": 4.0, "tests_total": 4.0}
    assert step.result.process_score == 1.0


async def test_code_wrong_solution_gets_failing_test_feedback_then_can_fix_it(code_env):
    episode = await start(code_env, "train-fizzbuzz", 3)
    wrong = await episode.step(fenced("def fizzbuzz(n):\n    return 'Fizz' if n % 3 == 0 else str(n)\n"))
    assert wrong.reward == 0.0 and not wrong.done
    # fizzbuzz(3) and fizzbuzz(7) pass; fizzbuzz(5) and fizzbuzz(15) fail: 2 of 4.
    assert wrong.result.metrics == {"tests_passed": 2.0, "tests_total": 4.0}
    assert wrong.result.process_score == 0.5
    feedback = wrong.observation[0].content
    assert "2 of 4 hidden tests failed" in feedback
    assert "fizzbuzz(5) returned 'Fizz'" not in feedback and "fizzbuzz(5) returned '5', expected 'Buzz'" in feedback
    fixed = await episode.step(fenced(json.loads(code_env._tasks["train-fizzbuzz"][0].reference)["solution"]))
    assert fixed.reward == 1.0 and episode.solved


async def test_code_wrong_policy_earns_nothing_and_is_truncated(code_env):
    episode = await start(code_env, "train-add", 2)
    steps = [await episode.step(fenced("def add(a, b):\n    return a - b\n")) for _ in range(2)]
    assert [s.reward for s in steps] == [0.0, 0.0]
    assert steps[-1].truncated and episode.done and not episode.solved


async def test_code_reply_without_code_gets_feedback(code_env):
    episode = await start(code_env, "train-add", 3)
    step = await episode.step("I would add the numbers.")
    assert step.reward == 0.0 and "```python" in step.observation[0].content


async def test_code_infinite_loop_is_stopped_and_explained(code_env):
    episode = await start(code_env, "train-add", 3)
    step = await episode.step(fenced("def add(a, b):\n    while True:\n        pass\n"))
    assert step.reward == 0.0
    assert "limit reached" in step.observation[0].content


async def test_code_solution_cannot_read_the_hidden_tests_or_fake_results(code_env):
    episode = await start(code_env, "train-add", 3)
    snoop = "import os\nSEEN = sorted(os.listdir('.'))\nprint('{\"fake\": true}')\ndef add(a, b):\n    return SEEN\n"
    step = await episode.step(fenced(snoop))
    assert step.reward == 0.0
    # The harness deleted the tests file before importing the solution.
    assert ".outrider_tests.json" not in step.observation[0].content
    assert "add(2, 3) returned ['main.py', 'solution.py'], expected 5" in step.observation[0].content


async def test_every_shipped_problem_is_solved_by_its_reference_and_not_by_a_stub(code_env):
    problems = load_problems()
    assert len(problems) == 40 and sum(p["split"] == "test" for p in problems) == 10

    async def check(problem):
        env = CodeEnv(context=code_env.context)
        task_id = f"{problem['split']}-{problem['slug']}"
        await env.reset(task_id, 0)
        good = await env.step(fenced(problem["solution"]))
        name = problem["signature"].split("(")[0]
        stub = await env.step(fenced(f"def {name}(*args):\n    return None\n"))
        return task_id, good.reward, stub.reward

    outcomes = await asyncio.gather(*(check(p) for p in problems))
    assert [(task_id, 1.0, 0.0) for task_id, _, _ in outcomes] == outcomes


# --- python-tool --------------------------------------------------------------------


@pytest.fixture
def tool_env(env_sandbox):
    return PythonToolEnv(context=EnvContext(sandbox=env_sandbox, sandbox_limits=FAST_LIMITS))


async def test_tool_policy_computes_then_answers_for_full_reward(tool_env):
    task = tool_env.tasks("train")[0]  # level 0: "What is A * B?"
    episode = await start(tool_env, task.id, 4)
    expression = task.preview.removeprefix("What is ").removesuffix("?")
    call = await episode.step("Let me compute. " + format_call("python", {"code": f"print({expression})"}))
    assert call.reward == 0.0 and not call.done
    [record] = call.result.tool_calls
    assert record.status is ToolStatus.OK and record.sandbox.limit_hit is LimitHit.NONE
    [tool_message] = call.observation
    assert (tool_message.role, tool_message.name, tool_message.content) == ("tool", "python", f"{task.reference}\n")
    answer = await episode.step(f"Answer: {tool_message.content.strip()}")
    assert answer.reward == 1.0 and answer.done and episode.solved
    assert episode.total_reward == 1.0


async def test_tool_malformed_call_is_an_error_observation_not_a_crash(tool_env):
    task = tool_env.tasks("train")[0]
    episode = await start(tool_env, task.id, 4)
    step = await episode.step('<tool_call>{"name": "python", "arguments": {"code": "print(1)"}</tool_call>')
    assert step.reward == 0.0 and not step.done
    [record] = step.result.tool_calls
    assert record.status is ToolStatus.INVALID_INPUT and "not valid JSON" in record.message
    assert "Tool call error" in step.observation[0].content and "<tool_call>" in step.observation[0].content
    assert step.result.metrics["invalid_tool_calls"] == 1.0
    unknown = await episode.step(format_call("shell", {"cmd": "ls"}))
    assert unknown.result.tool_calls[0].status is ToolStatus.INVALID_INPUT
    assert "unknown tool 'shell'" in unknown.result.tool_calls[0].message
    bad_args = await episode.step(format_call("python", {"source": "print(1)"}))
    assert "exactly one argument, 'code'" in bad_args.result.tool_calls[0].message
    final = await episode.step(f"Answer: {task.reference}")
    assert final.reward == 1.0


async def test_tool_wrong_answer_gets_feedback_and_no_reward(tool_env):
    task = tool_env.tasks("train")[0]
    episode = await start(tool_env, task.id, 2)
    steps = [await episode.step("Answer: 12345"), await episode.step("Answer: 54321")]
    assert [s.reward for s in steps] == [0.0, 0.0]
    assert "12345 is not correct" in steps[0].observation[0].content
    assert steps[-1].truncated and not episode.solved


async def test_tool_program_past_its_limit_is_a_tool_error_and_the_episode_goes_on(tool_env):
    task = tool_env.tasks("train")[0]
    episode = await start(tool_env, task.id, 4)
    step = await episode.step(format_call("python", {"code": "while True:\n    pass\n"}))
    [record] = step.result.tool_calls
    assert record.status is ToolStatus.ERROR
    assert record.sandbox.limit_hit in (LimitHit.WALL_TIME, LimitHit.CPU_TIME)
    assert "limit reached" in step.observation[0].content
    assert not step.done

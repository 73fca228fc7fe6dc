"""`python-tool`: questions best answered by computing, with a sandboxed python tool.

Each turn the policy either calls the tool (see outrider.envs.tools for the one
format) and gets its output back as a "tool" message, or answers (read by
`outrider.envs.answers`, as for `math`: `####`, \\boxed{}, "Answer:", else the
last number). A correct answer ends the episode with reward 1; a wrong one gets
feedback and another try. A malformed or unknown tool call yields an error
observation, is recorded with status INVALID_INPUT and counted, and the
episode goes on.

Levels: 0 products of 4-5 digit numbers, 1 digit sums of powers of two,
2 prime counts, 3 letter counts in long strings and modular powers.
Params: `difficulty`, `max_factor` (level 0 multiplies two numbers in 1000..99999;
with `max_factor` set, in 2..max_factor: small enough that a 135M model is sometimes
right without the tool, so GRPO has a signal from the first step on CPU),
`num_train` (1000), `num_test` (200).
"""

from __future__ import annotations

import functools
import string
from fractions import Fraction

from outrider.envs.answers import extract_answer, format_number
from outrider.envs.builtin.common import (
    check_split,
    difficulty_levels,
    draw,
    parse_task_id,
    split_sizes,
    task_id,
    task_rng,
)
from outrider.envs.interface import Environment, Message, ParamError, StepResult, Task, ToolCallRecord, ToolStatus, param
from outrider.envs.sandbox import LimitHit
from outrider.envs.tools import (
    PYTHON_TOOL,
    TOOL_CALL_INSTRUCTIONS,
    format_call,
    format_run_output,
    malformed_call_message,
    parse_tool_calls,
)
from outrider.proto.v1 import common_pb2, env_pb2

NAME = "python-tool"
SYSTEM_PROMPT = (
    "Answer the question. You have a tool `python` that runs a Python 3 program and shows its output.\n"
    f"{TOOL_CALL_INSTRUCTIONS}\n"
    f"Example: {format_call('python', {'code': 'print(123 * 456)'})}\n"
    "When you know the answer, reply with 'Answer: <number>' and no tool call."
)


def _primes_below(n: int) -> int:
    sieve = bytearray([1]) * n
    sieve[:2] = b"\0\0"
    for i in range(2, int(n**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(sieve[i * i :: i]))
    return sum(sieve)


def _level0(rng, max_factor: int | None = None):
    low, high = (1000, 99999) if max_factor is None else (2, max_factor)
    a, b = rng.randint(low, high), rng.randint(low, high)
    return f"What is {a} * {b}?", a * b


def _level1(rng):
    k = rng.randint(40, 300)
    return f"What is the sum of the decimal digits of 2**{k}?", sum(int(d) for d in str(2**k))


def _level2(rng):
    n = rng.randint(1000, 30000)
    return f"How many prime numbers are there below {n}?", _primes_below(n)


def _level3(rng):
    if rng.random() < 0.5:
        letter = rng.choice("abcde")
        text = "".join(rng.choice(string.ascii_lowercase[:8]) for _ in range(rng.randint(60, 120)))
        return f"How many times does the letter '{letter}' occur in the string '{text}'?", text.count(letter)
    a, b, m = rng.randint(2, 99), rng.randint(50, 500), rng.randint(7, 997)
    return f"What is the remainder of {a}**{b} divided by {m}?", pow(a, b, m)


GENERATORS = (_level0, _level1, _level2, _level3)


@functools.lru_cache(maxsize=16)
def build_tasks(
    levels: tuple[int, ...], sizes: tuple[tuple[str, int], ...], max_factor: int | None = None
) -> dict[str, tuple[Task, ...]]:
    generators = (functools.partial(_level0, max_factor=max_factor), *GENERATORS[1:])
    tasks = {}
    for split, size in sizes:
        made = []
        for index in range(size):
            level = levels[index % len(levels)]
            text, answer = draw(generators[level], task_rng(NAME, split, index), split)
            made.append(Task(task_id(split, index), split, float(level), text, format_number(Fraction(answer))))
        tasks[split] = tuple(made)
    return tasks


class PythonToolEnv(Environment):
    needs_sandbox = True

    def __init__(self, params=None, context=None):
        super().__init__(params, context)
        self.sizes = split_sizes(self.params, 1000, 200)
        self.levels = tuple(difficulty_levels(self.params, len(GENERATORS) - 1))
        self.max_factor = param(self.params, "max_factor", None, int)
        if self.max_factor is not None and not 2 <= self.max_factor <= 99999:
            raise ParamError(f"params.max_factor: must be in [2, 99999], got {self.max_factor}")
        self.task: Task | None = None

    @classmethod
    def default_spec(cls) -> env_pb2.EnvSpec:
        return env_pb2.EnvSpec(
            name=NAME,
            version="1.0.0",
            description="Questions best answered by computing; the policy may call a sandboxed python tool, then answers.",
            python=env_pb2.PythonEntryPoint(entry_point="outrider.envs.builtin.python_tool_env:PythonToolEnv"),
            tools=[PYTHON_TOOL],
            max_turns=4,
            sandbox=common_pb2.SandboxLimits(wall_time_s=10, cpu_time_s=5),
            reward=env_pb2.RewardSpec(max_reward=1.0),
        )

    def _all(self):
        return build_tasks(self.levels, tuple(self.sizes.items()), self.max_factor)

    def tasks(self, split: str) -> list[Task]:
        return list(self._all()[check_split(split)])

    async def reset(self, task_id_: str, seed: int) -> list[Message]:
        self.require_sandbox()
        split, index = parse_task_id(task_id_, self.sizes)
        self.task = self._all()[split][index]
        return [Message("system", SYSTEM_PROMPT), Message("user", self.task.preview)]

    async def step(self, action: str) -> StepResult:
        calls = parse_tool_calls(action)
        if calls:
            records = [await self._call(call) for call in calls]
            observation = [Message("tool", record.output, name=record.name or "python") for record in records]
            invalid = sum(1 for record in records if record.status is ToolStatus.INVALID_INPUT)
            return StepResult(observation, reward=0.0, done=False, tool_calls=records, metrics={"invalid_tool_calls": float(invalid)})
        answer = extract_answer(action).number
        if answer is None:
            feedback = "Call the python tool, or give your final answer as 'Answer: <number>'."
            return StepResult([Message("user", feedback)], reward=0.0, done=False, metrics={"no_answer": 1.0})
        if answer.value == Fraction(self.task.reference):
            return StepResult([], reward=1.0, done=True, solved=True, metrics={"correct": 1.0})
        feedback = f"{format_number(answer.value)} is not correct. You can use the python tool to compute it."
        return StepResult([Message("user", feedback)], reward=0.0, done=False, metrics={"correct": 0.0})

    async def _call(self, call) -> ToolCallRecord:
        if not call.ok:
            return ToolCallRecord(call.name, call.raw, malformed_call_message(call.error), ToolStatus.INVALID_INPUT, call.error)
        if call.name != "python":
            error = f"unknown tool {call.name!r}; the only tool is 'python'"
            return ToolCallRecord(call.name, call.arguments_json, malformed_call_message(error), ToolStatus.INVALID_INPUT, error)
        code = call.arguments.get("code")
        if not isinstance(code, str) or set(call.arguments) != {"code"}:
            error = "the python tool takes exactly one argument, 'code' (a string)"
            return ToolCallRecord(call.name, call.arguments_json, malformed_call_message(error), ToolStatus.INVALID_INPUT, error)
        result = await self.require_sandbox().arun(code, self.context.sandbox_limits)
        status = ToolStatus.OK if result.limit_hit is LimitHit.NONE else ToolStatus.ERROR
        message = "" if status is ToolStatus.OK else f"{result.limit_hit.name.lower()} limit reached"
        return ToolCallRecord("python", call.arguments_json, format_run_output(result), status, message, sandbox=result)

"""The Outrider side of bench/vs_trl.py's workload: a single-turn environment over its prompt set.

Registered from an EnvSpec file the bench writes (`env_spec`), with the entry
point `vs_trl_env:SumEnv`; the env service finds this module because the
bench puts bench/ on PYTHONPATH (the service is a child process of
`outrider train` and inherits it). Task `train-NNNNN` is problem NNNNN of
`Workload.problems()`, row NNNNN of the TRL side's dataset: the prompt text
and the reward come from bench/vs_trl_workload.py and nowhere else.

Params (strings, as every EnvSpec param): `num_prompts`, `seed`,
`operand_limit`, `test_prompts` — as in `Workload`. The test split is
`Workload.test_problems()` (held out: bench/time_to_quality.py evaluates on it).
"""

from __future__ import annotations

from outrider.envs.interface import Environment, Message, StepResult, Task, TaskNotFound, param

import vs_trl_workload as workload

NAME = "vs-trl-sum"
ENTRY_POINT = "vs_trl_env:SumEnv"


def env_spec(work: workload.Workload) -> dict:
    """The EnvSpec (YAML form) that registers this environment for `work`: one turn per episode."""
    return {
        "name": NAME,
        "version": "1.0.0",
        "description": "bench/vs_trl.py: 'What is a + b?' with the reward of bench/vs_trl_workload.py",
        "python": {"entry_point": ENTRY_POINT},
        "max_turns": 1,
        "reward": {"max_reward": 1.0},
        "params": {"num_prompts": str(work.num_prompts), "seed": str(work.seed),
                   "operand_limit": str(work.operand_limit), "test_prompts": str(work.test_prompts)},
    }


class SumEnv(Environment):
    def __init__(self, params=None, context=None):
        super().__init__(params, context)
        work = workload.Workload(
            model="",
            num_prompts=param(self.params, "num_prompts", 1024, int),
            seed=param(self.params, "seed", 0, int),
            operand_limit=param(self.params, "operand_limit", workload.OPERAND_LIMIT, int),
            test_prompts=param(self.params, "test_prompts", 16, int),
        )
        self.splits = {"train": work.problems(), "test": work.test_problems()}
        self.problem: workload.Problem | None = None

    def tasks(self, split: str) -> list[Task]:
        problems = self.splits.get(split or "train")
        if problems is None:
            raise TaskNotFound(f"unknown split {split!r}; valid: train, test")
        return [Task(f"{split}-{i:05d}", split, 0.0, p.prompt, str(p.answer)) for i, p in enumerate(problems)]

    async def reset(self, task_id: str, seed: int) -> list[Message]:
        split, _, index = task_id.partition("-")
        problems = self.splits.get(split)
        if problems is None or not index.isdigit() or int(index) >= len(problems):
            raise TaskNotFound(f"task {task_id!r} does not exist (train-00000..train-{len(self.splits['train']) - 1:05d})")
        self.problem = problems[int(index)]
        return [Message("user", self.problem.prompt)]

    async def step(self, action: str) -> StepResult:
        value = workload.reward(action, self.problem.answer)
        return StepResult([], reward=value, done=True, solved=value == 1.0, metrics={"correct": value})

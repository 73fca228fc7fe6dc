"""Evaluation on held-out tasks: pass@k, first-try and within-episode.

Did RL widen what the model can solve, or only sharpen what it already
could? pass@1 answers the second; pass@k at larger k the first. Both are
estimated with the unbiased estimator 1 − C(n−c, k)/C(n, k) from n samples
per task (outrider.learner.algos.passk).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from outrider.config.rollout import EvalConfig, RolloutConfig
from outrider.learner.algos import pass_at_k
from outrider.proto.v1 import common_pb2
from outrider.rollout.episodes import GroupPlayer


@dataclass
class EvalResult:
    policy_version: int
    tasks: int
    samples: int
    pass_at_k: dict[str, float]
    """Solved within the episode (any turn), by k."""
    first_try_pass_at_k: dict[str, float]
    """Solved on the first turn, by k."""
    mean_turns: float
    errors: int
    finished_at: float | None = None
    """Unix time at which the evaluation ended (the run report places it on its wall clock)."""

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> EvalResult:
        return cls(**json.loads(Path(path).read_text()))


def _curve(n: int, correct: list[int]) -> dict[str, float]:
    counts = torch.tensor(correct)
    samples = torch.full_like(counts, n)
    return {str(k): float(pass_at_k(samples, counts, k).mean()) for k in range(1, n + 1)}


def evaluate(policy, env, tasks: list[common_pb2.Task], rollout: RolloutConfig, cfg: EvalConfig, threads: int = 16,
             progress: Callable[[int, int], None] | None = None) -> EvalResult:
    """Play `cfg.samples` episodes of every task and estimate pass@k.

    `threads` tasks are played at once, so threads × samples sequences are in flight
    on the policy: enough to fill vLLM's batch (4 threads left it a quarter full).
    `progress(done, total)` is called as each task's episodes finish."""
    sampling = rollout.sampling.model_copy(update={"temperature": cfg.temperature})
    player = GroupPlayer(policy, env, rollout.model_copy(update={"sampling": sampling}))
    lock, done = threading.Lock(), [0]

    def one(task: common_pb2.Task):
        episodes = player.play(task, size=cfg.samples, seed=0)
        if progress is not None:
            with lock:
                done[0] += 1
                progress(done[0], len(tasks))
        return episodes

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(one, tasks))
    solved, first_try, turns, errors, versions = [], [], [], 0, []
    for episodes in results:
        good = [e for e in episodes if not e.error]
        errors += len(episodes) - len(good)
        # An episode that failed with an error counts as not solved (and is reported).
        solved.append(sum(e.solved for e in good))
        first_try.append(sum(e.solved and len(e.turns) == 1 for e in good))
        turns += [len(e.turns) for e in good]
        versions += [t.policy_version for e in good for t in e.turns]
    return EvalResult(
        policy_version=min(versions) if versions else 0,
        tasks=len(tasks),
        samples=cfg.samples,
        pass_at_k=_curve(cfg.samples, solved),
        first_try_pass_at_k=_curve(cfg.samples, first_try),
        mean_turns=sum(turns) / max(len(turns), 1),
        errors=errors,
    )


def held_out_tasks(env_client, envs: list[str], per_env: int) -> list[common_pb2.Task]:
    tasks = []
    for env in envs:
        tasks += env_client.list_tasks(env, split="test", limit=per_env)
    return tasks

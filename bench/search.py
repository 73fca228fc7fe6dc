"""PRM-guided search vs plain sampling at equal generated tokens (pass@1).

    nice -n 10 .venv/bin/python bench/search.py [--problems 100] [--budget 320] [--p-correct 0.5] [--prm DIR]

Task: the synthetic multi-step arithmetic problems of the PRM data set
(outrider/services/reward/prm/dataset.py, "Compute ((12 + 7) - 3) + 5."), held out from
the PRM's training prompts. PRM: the tiny scalar-head scorer trained here on 3000
generated solutions (as tests/integration/reward/test_reward_prm_service.py does, about a
minute; --prm reuses a saved one), served by the real reward service over gRPC and
called through the rollout's own PRMScorer (outrider/rollout/search_play.py).

Policy: a *simulated* step proposer, not a language model (the tiny test model cannot do
arithmetic, and SmolLM2-135M on two shared cores is too slow for a benchmark run): each
step "a op b = c" has the right result with probability --p-correct, else another number
in [10, 99], and later steps carry on from whatever value was written, as a model would.
A token is a byte of the step's text (the PRM's byte tokenizer), the delimiter "\\n\\n"
included. The search code is exactly what the rollout runs; only the proposer differs.

Methods, each with the same per-problem token budget (--budget generated tokens):
  sample-1     one sampled solution (plain pass@1; uses ~1/8 of the budget)
  best-of-N    N sampled solutions, the PRM picks one (N = budget / mean solution length)
  beam         beam search, width 2 or 4, 2 expansions per beam
  mcts         MCTS with UCB, c = 1, 2 expansions per node, until the budget is spent
Every method values prefixes by the weakest step (aggregate "min"). Reported: pass@1 of
the returned answer with a 90% bootstrap interval over problems, the fraction of
returned answers left unfinished by the budget, generated tokens, policy calls and PRM
calls per problem.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from outrider.config import RewardServiceConfig, ServerConfig
from outrider.config.reward import ScalarHeadPRMConfig
from outrider.proto.v1 import common_pb2
from outrider.rollout.search import Step, beam_search, mcts, sample
from outrider.rollout.search_play import PRMScorer
from outrider.services.reward.prm import dataset as ds
from outrider.services.reward.prm import train as prm_train

DELIMITER = ds.STEP_DELIMITER


class NoisySolver:
    """Proposer: the next operation of the problem, right with probability p (module docstring)."""

    def __init__(self, ops: list[tuple[int, str, int]], p: float, rng: random.Random):
        self.ops, self.p, self.rng = ops, p, rng

    def _next(self, prefix) -> tuple[str, bool]:
        index = len(prefix)
        value = self.ops[0][0] if index == 0 else int(prefix[-1].text.split("=")[1])
        _, op, operand = self.ops[index]
        right = value + operand if op == "+" else value - operand
        result = right if self.rng.random() < self.p else wrong(self.rng, right)
        final = index == len(self.ops) - 1
        return f"{value} {op} {operand} = {result}" + ("" if final else DELIMITER), final

    def propose(self, prefixes, k, max_tokens):
        out = []
        for prefix in prefixes:
            steps = []
            for _ in range(k):
                text, final = self._next(prefix)
                if len(text) > max_tokens:  # a length stop: the step is cut and the answer unfinished
                    text, final = text[:max_tokens], False
                steps.append(Step(tuple(text.encode()), text, final))
            out.append(steps)
        return out


def wrong(rng: random.Random, value: int) -> int:
    """Another number in [10, 99] (the PRM data set's corruption: its length gives nothing away)."""
    while (other := rng.randint(ds.MIN_VALUE, ds.MAX_VALUE)) == value:
        pass
    return other


def solution(ops: list[tuple[int, str, int]]) -> list[str]:
    """The right steps, delimiter included (what a perfect proposer writes)."""
    value, steps = ops[0][0], []
    for _, op, operand in ops:
        result = value + operand if op == "+" else value - operand
        steps.append(f"{value} {op} {operand} = {result}")
        value = result
    return [step + DELIMITER for step in steps[:-1]] + steps[-1:]


def answer(trajectory) -> int | None:
    if not trajectory.final:
        return None
    try:
        return int(trajectory.steps[-1].text.split("=")[1])
    except (IndexError, ValueError):
        return None


class RewardServerThread:
    """The real reward service (create_server) on its own event loop thread."""

    def __init__(self, cfg: RewardServiceConfig):
        self.cfg, self.loop = cfg, asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        from outrider.services.reward.server import create_server

        self.thread.start()

        async def start():
            built = await create_server(self.cfg)
            await built.start()
            return built

        self.built = asyncio.run_coroutine_threadsafe(start(), self.loop).result(300)
        self.address = f"127.0.0.1:{self.built.port}"
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.built.stop(0), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def train_prm(out: Path) -> tuple[Path, float]:
    import torch

    torch.manual_seed(0)
    settings = prm_train.TrainSettings(steps=1000, batch_size=32, lr=3e-3, seed=0, threads=1)
    records = ds.make_step_records(3000, seed=1)
    heldout = ds.make_step_records(400, seed=2, exclude={r.prompt for r in records})
    tokenizer = prm_train.byte_tokenizer()
    model = prm_train.tiny_scorer(tokenizer, seed=0)
    prm_train.train(model, tokenizer, records, settings)
    scores, labels = prm_train.step_scores(model, tokenizer, heldout)
    auc = prm_train.auc(scores, labels)
    prm_train.save_scorer(model, tokenizer, out, settings, {"heldout_auc": auc})
    return out, auc


def bootstrap(values: list[float], rng: np.random.Generator, resamples: int = 2000) -> tuple[float, float]:
    data = np.asarray(values, dtype=float)
    means = data[rng.integers(0, len(data), (resamples, len(data)))].mean(axis=1)
    return float(np.quantile(means, 0.05)), float(np.quantile(means, 0.95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--budget", type=int, default=320, help="generated tokens per problem, every method")
    parser.add_argument("--p-correct", type=float, default=0.5, help="probability that a proposed step is right")
    parser.add_argument("--prm", type=Path, default=None, help="a scorer folder: used if it exists, else trained and saved there (default: trained into a temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        auc = None
        prm = args.prm or Path(tmp) / "prm"
        if not (prm / "config.json").exists():
            prm, auc = train_prm(prm)
            print(f"trained the PRM in {time.perf_counter() - started:.0f} s, held-out step AUC {auc:.3f}", flush=True)
        train_prompts = {r.prompt for r in ds.make_step_records(3000, seed=1)}
        rng = random.Random(1000 + args.seed)
        problems = []
        while len(problems) < args.problems:
            prompt, ops = ds.arithmetic_problem(rng)
            if prompt not in train_prompts:
                problems.append((prompt, ops))
        cfg = RewardServiceConfig(
            server=ServerConfig(metrics_port=None, grace_s=0), prm=ScalarHeadPRMConfig(model=str(prm), batch_size=32, device="cpu")
        )
        from outrider.clients.reward import RewardClient

        with RewardServerThread(cfg) as server, RewardClient(server.address) as reward:
            mean_len = np.mean([len("".join(solution(ops))) for _, ops in problems])
            n = max(1, int(args.budget // mean_len))
            methods = {
                "sample-1": lambda p, s: sample(p, None, samples=1, max_steps=8, token_budget=args.budget),
                f"best-of-{n}": lambda p, s: sample(p, s, samples=n, max_steps=8, token_budget=args.budget),
                "beam W=2 E=2": lambda p, s: beam_search(p, s, width=2, expansions=2, max_steps=8, token_budget=args.budget),
                "beam W=4 E=2": lambda p, s: beam_search(p, s, width=4, expansions=2, max_steps=8, token_budget=args.budget),
                "mcts E=2 c=1": lambda p, s: mcts(p, s, simulations=1000, expansions=2, max_steps=8, token_budget=args.budget, ucb_c=1.0, width=4),
            }
            rows = []
            for name, run in methods.items():
                t0 = time.perf_counter()
                solved, tokens, policy_calls, prm_calls, unfinished = [], [], [], [], []
                for index, (prompt, ops) in enumerate(problems):
                    truth = int(solution(ops)[-1].split("=")[1])
                    task = common_pb2.Task(env="arithmetic", id=str(index))
                    scorer = PRMScorer(reward, task, [common_pb2.ChatMessage(role="user", content=prompt)], DELIMITER, "min")
                    proposer = NoisySolver(ops, args.p_correct, random.Random(f"{args.seed}/{name}/{index}"))
                    result = run(proposer, scorer)
                    solved.append(float(answer(result.best) == truth))
                    unfinished.append(float(not result.best.final))
                    tokens.append(result.compute.generated_tokens)
                    policy_calls.append(result.compute.policy_calls)
                    prm_calls.append(result.compute.prm_calls)
                low, high = bootstrap(solved, np.random.default_rng(args.seed))
                print(f"{name}: pass@1 {np.mean(solved):.2f} in {time.perf_counter() - t0:.0f} s", flush=True)
                rows.append((name, np.mean(solved), low, high, np.mean(unfinished), np.mean(tokens), max(tokens), np.mean(policy_calls), np.mean(prm_calls), time.perf_counter() - t0))
    print(f"{args.problems} held-out problems, budget {args.budget} generated tokens per problem, p(step right) = {args.p_correct}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}")
    print("| method | pass@1 | 90% CI | answer unfinished | tokens / problem (mean, max) | policy calls | PRM calls | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for name, acc, low, high, open_, tok, tok_max, pc, rc, secs in rows:
        print(f"| {name} | {acc:.2f} | [{low:.2f}, {high:.2f}] | {open_:.2f} | {tok:.0f}, {tok_max} | {pc:.1f} | {rc:.1f} | {secs:.0f} |")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

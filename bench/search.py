"""PRM-guided search vs plain sampling at equal generated tokens (pass@1).

    nice -n 10 .venv/bin/python bench/search.py [--problems 100] [--budget 320] [--p-correct 0.5] [--prm DIR]
    nice -n 10 .venv/bin/python bench/search.py --proposer lm [--problems 30] [--budget 256] [--prm DIR]

Task: the synthetic multi-step arithmetic problems of the PRM data set
(outrider/services/reward/prm/dataset.py, "Compute ((12 + 7) - 3) + 5."), held out from
the PRM's training prompts. PRM: the tiny scalar-head scorer trained here on 3000
generated solutions (as tests/integration/reward/test_reward_prm_service.py does, about a
minute; --prm reuses a saved one), served by the real reward service over gRPC and
called through the rollout's own PRMScorer (outrider/rollout/search_play.py).

Policy, --proposer simulated (the default): a step proposer, not a language model: each
step "a op b = c" has the right result with probability --p-correct, else another number
in [10, 99], and later steps carry on from whatever value was written, as a model would.
A token is a byte of the step's text (the PRM's byte tokenizer), the delimiter "\\n\\n"
included. The search code is exactly what the rollout runs; only the proposer differs.

Policy, --proposer lm: a real language model (--model, SmolLM2-135M-Instruct) served by
the real policy service (HF backend, float32, on a thread of this process, loopback),
proposing through the rollout's own PolicyProposer: one Generate (n = k, stop at the
delimiter) per search call, the step limit min(--step-tokens, the budget share). The
prompt is the chat template over --shots solved problems of the data set as earlier
turns (steps joined by the delimiter) and then the problem, so the model writes steps
"a op b = c" and ends its turn after the answer. Each step's text is put in the PRM's
format before the PRM sees it (prm_step: spacing, a full stop after the result; a step
that is not one operation is kept as written); its token ids stay the model's. Tokens
are then *model* tokens (SmolLM2's tokenizer, end-of-turn and delimiter tokens
included), not bytes: a right solution is ~31 of them (the end-of-turn token included)
against ~36 bytes, hence the default budget of 256, as many right solutions (N = 8) as
320 bytes. Sampling is not seeded, so runs differ by sampling noise. Also reported: the
fraction of proposed steps that are right (right_step: the problem's next operation on
the value last written).

Methods, each with the same per-problem token budget (--budget generated tokens):
  sample-1     one sampled solution (plain pass@1; uses ~1/N of the budget)
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
import dataclasses
import os
import platform
import random
import re
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from outrider.config import PolicyServiceConfig, RewardServiceConfig, ServerConfig
from outrider.config.reward import ScalarHeadPRMConfig
from outrider.config.rollout import RolloutConfig
from outrider.proto.v1 import common_pb2
from outrider.rollout.search import Step, beam_search, mcts, sample
from outrider.rollout.search_play import PolicyProposer, PRMScorer
from outrider.services.reward.prm import dataset as ds
from outrider.services.reward.prm import train as prm_train

DELIMITER = ds.STEP_DELIMITER
MAX_PROMPTS = 16


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


# "a op b = c", as a small model writes it: any spacing, a full stop after the result.
STEP = re.compile(r"\s*(\d+)\s*([+-])\s*(\d+)\s*=\s*(-?\d+)\s*\.?\s*")


def parse_step(text: str) -> tuple[int, str, int, int] | None:
    """(a, op, b, c) of a step that is one operation "a op b = c" and nothing else, else None."""
    match = STEP.fullmatch(text)
    return None if match is None else (int(match[1]), match[2], int(match[3]), int(match[4]))


def prm_step(text: str) -> str:
    """An LM step in the PRM data set's format: "a op b = c", plus the delimiter if the step
    ended with it; a step that is not one operation is kept as written (the PRM judges it)."""
    body = text.removesuffix(DELIMITER)
    parsed = parse_step(body)
    if parsed is None:
        return text
    a, op, b, c = parsed
    return f"{a} {op} {b} = {c}" + text[len(body):]


def right_step(ops: list[tuple[int, str, int]], previous: list[str]) -> str | None:
    """The right next step after the steps `previous` (PRM format, delimiter excluded): the
    problem's next operation applied to the value last written, whether or not that value
    was right (as NoisySolver carries on). None when there is no next operation or the last
    step is not one operation."""
    index = len(previous)
    if index >= len(ops):
        return None
    if index == 0:
        value = ops[0][0]
    elif (parsed := parse_step(previous[-1].removesuffix(DELIMITER))) is not None:
        value = parsed[3]
    else:
        return None
    _, op, operand = ops[index]
    return f"{value} {op} {operand} = {value + operand if op == '+' else value - operand}"


class LMProposer:
    """Proposer: the real policy through the rollout's own PolicyProposer (one Generate with
    n = k and stop = [delimiter] per call; token ids, finish and length limits as the rollout
    has them), each step's text put in the PRM's format (prm_step). Counts how many
    proposals are right_step."""

    def __init__(self, policy: PolicyProposer, ops: list[tuple[int, str, int]]):
        self.policy, self.ops = policy, ops
        self.proposed = self.right = 0

    def propose(self, prefixes, k, max_tokens):
        out = []
        for prefix, steps in zip(prefixes, self.policy.propose(prefixes, k, max_tokens), strict=True):
            expected = right_step(self.ops, [step.text for step in prefix])
            kept = [dataclasses.replace(step, text=prm_step(step.text)) for step in steps]
            self.proposed += len(kept)
            self.right += sum(expected is not None and step.text.removesuffix(DELIMITER) == expected for step in kept)
            out.append(kept)
        return out


def few_shot(prompt: str, shots: int, seed: int) -> list[common_pb2.ChatMessage]:
    """`shots` solved problems of the data set as earlier chat turns (steps joined by the
    delimiter, the answer last), then `prompt`: how SmolLM2 learns the step format."""
    rng, messages = random.Random(f"shots/{seed}"), []
    while len(messages) < 2 * shots:
        shot, ops = ds.arithmetic_problem(rng)
        if shot != prompt:
            messages += [common_pb2.ChatMessage(role="user", content=shot),
                         common_pb2.ChatMessage(role="assistant", content="".join(solution(ops)))]
    return [*messages, common_pb2.ChatMessage(role="user", content=prompt)]


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


def policy_service(model: str) -> PolicyServiceConfig:
    """The policy service for --proposer lm: HF backend, float32 on CPU, loopback, metrics off."""
    return PolicyServiceConfig.model_validate({
        "model": model, "backend": "hf", "dtype": "float32",
        "limits": {"max_context": 1024, "max_tokens": 256, "max_n": 16, "max_prompts": MAX_PROMPTS},
        "server": {"metrics_port": None, "grace_s": 0},
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--proposer", choices=["simulated", "lm"], default="simulated", help="who proposes the steps (module docstring)")
    parser.add_argument("--budget", type=int, default=None,
                        help="generated tokens per problem, every method (default: 320 simulated, 256 lm)")
    parser.add_argument("--p-correct", type=float, default=0.5, help="simulated: probability that a proposed step is right")
    parser.add_argument("--model", default="smollm2-135m-instruct", help="lm: the policy's model")
    parser.add_argument("--shots", type=int, default=2, help="lm: solved problems in the prompt")
    parser.add_argument("--temperature", type=float, default=0.7, help="lm: sampling temperature")
    parser.add_argument("--step-tokens", type=int, default=16, help="lm: at most this many tokens per step")
    parser.add_argument("--prm", type=Path, default=None, help="a scorer folder: used if it exists, else trained and saved there (default: trained into a temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lm = args.proposer == "lm"
    budget = args.budget or (256 if lm else 320)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
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
        from outrider.clients.policy import PolicyClient
        from outrider.clients.reward import RewardClient

        server = stack.enter_context(RewardServerThread(cfg))
        reward = stack.enter_context(RewardClient(server.address))
        if lm:
            from outrider.services.policy.inprocess import PolicyServerThread

            t0 = time.perf_counter()
            policy = stack.enter_context(PolicyClient(stack.enter_context(PolicyServerThread(policy_service(args.model))).address))
            print(f"policy service ({args.model}, hf) up in {time.perf_counter() - t0:.0f} s", flush=True)
            rollout = RolloutConfig.model_validate({
                "sampling": {"temperature": args.temperature, "top_p": 1.0, "max_tokens": 8 * args.step_tokens},
                "max_episode_tokens": 1024, "search": {"step_tokens": args.step_tokens},
            })
            conversations = [common_pb2.Conversation(messages=few_shot(p, args.shots, args.seed), add_generation_prompt=True)
                             for p, _ in problems]
            chunks = range(0, len(problems), MAX_PROMPTS)  # a request holds at most limits.max_prompts items
            prompt_ids = [list(t.ids) for i in chunks for t in policy.apply_chat_template(conversations[i:i + MAX_PROMPTS]).tokens]
            texts = ["".join(solution(ops)) for _, ops in problems]
            # A right solution in model tokens, plus the end-of-turn token the model writes after it.
            lengths = [len(ids) + 1 for i in chunks for ids in policy.tokenize(texts[i:i + MAX_PROMPTS])]
        else:
            lengths = [len("".join(solution(ops))) for _, ops in problems]
        mean_len = np.mean(lengths)
        n = max(1, int(budget // mean_len))
        methods = {
            "sample-1": lambda p, s: sample(p, None, samples=1, max_steps=8, token_budget=budget),
            f"best-of-{n}": lambda p, s: sample(p, s, samples=n, max_steps=8, token_budget=budget),
            "beam W=2 E=2": lambda p, s: beam_search(p, s, width=2, expansions=2, max_steps=8, token_budget=budget),
            "beam W=4 E=2": lambda p, s: beam_search(p, s, width=4, expansions=2, max_steps=8, token_budget=budget),
            "mcts E=2 c=1": lambda p, s: mcts(p, s, simulations=1000, expansions=2, max_steps=8, token_budget=budget, ucb_c=1.0, width=4),
        }
        rows, right = [], {}
        for name, run in methods.items():
            t0 = time.perf_counter()
            solved, tokens, policy_calls, prm_calls, unfinished, proposals = [], [], [], [], [], [0, 0]
            for index, (prompt, ops) in enumerate(problems):
                truth = int(solution(ops)[-1].split("=")[1])
                task = common_pb2.Task(env="arithmetic", id=str(index))
                scorer = PRMScorer(reward, task, [common_pb2.ChatMessage(role="user", content=prompt)], DELIMITER, "min")
                if lm:
                    proposer = LMProposer(PolicyProposer(policy, prompt_ids[index], rollout, DELIMITER), ops)
                else:
                    proposer = NoisySolver(ops, args.p_correct, random.Random(f"{args.seed}/{name}/{index}"))
                result = run(proposer, scorer)
                if lm:
                    proposals[0] += proposer.right
                    proposals[1] += proposer.proposed
                solved.append(float(answer(result.best) == truth))
                unfinished.append(float(not result.best.final))
                tokens.append(result.compute.generated_tokens)
                policy_calls.append(result.compute.policy_calls)
                prm_calls.append(result.compute.prm_calls)
            low, high = bootstrap(solved, np.random.default_rng(args.seed))
            print(f"{name}: pass@1 {np.mean(solved):.2f} in {time.perf_counter() - t0:.0f} s", flush=True)
            rows.append((name, np.mean(solved), low, high, np.mean(unfinished), np.mean(tokens), max(tokens), np.mean(policy_calls), np.mean(prm_calls), time.perf_counter() - t0))
            right[name] = proposals
    if lm:
        print(f"{args.problems} held-out problems, budget {budget} generated model tokens per problem (a right solution: {mean_len:.1f}); "
              f"policy {args.model} (hf, float32), {args.shots}-shot, temperature {args.temperature}, "
              f"at most {args.step_tokens} tokens a step")
    else:
        print(f"{args.problems} held-out problems, budget {budget} generated tokens per problem, p(step right) = {args.p_correct}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}")
    print("| method | pass@1 | 90% CI | answer unfinished | tokens / problem (mean, max) | policy calls | PRM calls | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for name, acc, low, high, open_, tok, tok_max, pc, rc, secs in rows:
        print(f"| {name} | {acc:.2f} | [{low:.2f}, {high:.2f}] | {open_:.2f} | {tok:.0f}, {tok_max} | {pc:.1f} | {rc:.1f} | {secs:.0f} |")
    if lm:
        total = [sum(r[0] for r in right.values()), sum(r[1] for r in right.values())]
        for name, (good, all_) in [*right.items(), ("all methods", total)]:
            print(f"proposed steps right ({name}): {good} of {all_} = {good / max(all_, 1):.2f}")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

"""Policy service throughput: gRPC service on vLLM vs vLLM in-process vs the HF backend.

    .venv/bin/python bench/policy_throughput.py [--repeats 3] [--max-tokens 128] [--out results.json]

Workload (the same ids for every variant): 8 chat prompts x n=8 samples x 128 new
tokens of SmolLM2-135M-Instruct (bf16), temperature 1, ignore_eos so every
completion has exactly 128 tokens. Reported: generated tokens / wall seconds of
the whole batch (median over repeats, after one warm-up request), for
  (a) the policy service on vLLM, called over gRPC from this process;
  (b) vLLM's AsyncLLM called in-process, with the same engine arguments;
  (c) the policy service on the HF backend, over gRPC;
  (d) with --generate-baseline, a reference: plain transformers `generate()`, one
      prompt at a time with num_return_sequences=n (one run; slow).
Also: the max |sampled logprob - ScoreTokens| of (a) and (c) on those completions
(bf16: the backends' tolerance on the real model). The three engines stay up
together and their measured runs alternate (a, b, c, a, b, c, ...), never
overlapping: on a shared 2-core box the load from other processes drifts, and
interleaving exposes (a), (b) and (c) to the same drift.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from vllm_inprocess import service_backend, start_engine, stop_engine

QUESTIONS = [
    "What is 17 + 25?", "Name three primary colours.", "Write a haiku about rain.", "Explain gravity to a child.",
    "Give me a synonym for happy.", "What is the capital of France?", "List two prime numbers.", "Describe a cat.",
]


def service_config(backend: str, args) -> str:
    return (
        f"kind: policy\nmodel: smollm2-135m-instruct\nbackend: {backend}\n"
        f"limits: {{max_context: 2048, max_n: 64, max_tokens: 1024, max_prompts: 64}}\n"
        f"vllm: {{cpu_kv_cache_gib: {args.kv_cache_gib}, enforce_eager: {str(args.enforce_eager).lower()}}}\n"
        "server: {port: 0, metrics_port: null}\nhttp_port: null\n"
    )


def start_service(backend: str, args, folder: Path) -> tuple[subprocess.Popen, str]:
    config = folder / f"{backend}.yaml"
    config.write_text(service_config(backend, args))
    process = subprocess.Popen(
        [sys.executable, "-m", "outrider.services.policy.main", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=open(folder / f"{backend}.log", "w"), text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    for line in process.stdout:
        if line.startswith("OUTRIDER_READY"):
            port = dict(p.split("=", 1) for p in line.split()[1:])["port"]
            return process, f"127.0.0.1:{port}"
    raise RuntimeError(f"{backend} service exited ({process.wait()}); see {folder / (backend + '.log')}")


def stop_service(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=120)


def prompt_ids(address: str) -> list[list[int]]:
    from outrider.clients.policy import PolicyClient

    with PolicyClient(address) as client:
        reply = client.apply_chat_template([[{"role": "user", "content": q}] for q in QUESTIONS])
    return [list(t.ids) for t in reply.tokens]


class ServiceRunner:
    """Measured runs of one policy service over gRPC."""

    def __init__(self, address: str, prompts: list[list[int]], args):
        from outrider.clients.policy import PolicyClient

        self.client = PolicyClient(address, timeout_s=3600)
        self.prompts, self.args, self.rates, self.reply = prompts, args, [], None
        self.client.generate(prompts[:1], n=2, temperature=1.0, max_tokens=8, ignore_eos=True)  # warm-up

    def run(self, repeat: int) -> None:
        start = time.perf_counter()
        self.reply = self.client.generate(self.prompts, n=self.args.n, temperature=1.0, max_tokens=self.args.max_tokens,
                                          ignore_eos=True, seed=abs(repeat))
        seconds = time.perf_counter() - start
        self.tokens = sum(len(c.token_ids) for r in self.reply.results for c in r.completions)
        self.rates.append(self.tokens / seconds)

    def summary(self) -> dict:
        reply = self.reply
        sequences = [(list(r.prompt_ids) + list(c.token_ids), len(r.prompt_ids)) for r in reply.results for c in r.completions]
        scored = self.client.score_tokens(sequences)
        sampled = [lp for r in reply.results for c in r.completions for lp in c.logprobs]
        scores = [lp for seq in scored.sequences for lp in seq.logprobs]
        self.client.close()
        return {"tokens_per_s": statistics.median(self.rates), "runs": self.rates, "tokens": self.tokens,
                "max_abs_logprob_diff": max(abs(a - b) for a, b in zip(sampled, scores))}


class InProcessVllm:
    """vLLM's AsyncLLM in this process, with the service's own engine arguments."""

    def __init__(self, prompts: list[list[int]], args):
        import yaml

        from outrider.config.policy import PolicyServiceConfig

        # The service's own config and factory: the same engine arguments, environment, dtype and device.
        backend, _ = service_backend(PolicyServiceConfig.model_validate(yaml.safe_load(service_config("vllm", args))))
        self.engine = start_engine(backend)
        self.prompts, self.args, self.rates = prompts, args, []

    async def _batch(self, count: int, n: int, max_tokens: int, seed: int) -> int:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        async def one(i: int, prompt: list[int]) -> int:
            params = SamplingParams(n=n, temperature=1.0, max_tokens=max_tokens, ignore_eos=True, logprobs=0, seed=seed,
                                    output_kind=RequestOutputKind.FINAL_ONLY)
            final = None
            async for output in self.engine.generate(TokensPrompt(prompt_token_ids=prompt), params, uuid.uuid4().hex):
                final = output
            return sum(len(c.token_ids) for c in final.outputs)

        return sum(await asyncio.gather(*(one(i, p) for i, p in enumerate(self.prompts[:count]))))

    async def warm_up(self) -> None:
        await self._batch(1, 2, 8, seed=1000)

    async def run(self, repeat: int) -> None:
        start = time.perf_counter()
        self.tokens = await self._batch(len(self.prompts), self.args.n, self.args.max_tokens, seed=abs(repeat))
        self.rates.append(self.tokens / (time.perf_counter() - start))

    def summary(self) -> dict:
        stop_engine(self.engine)
        del self.engine  # finalize now, not during interpreter teardown (its __del__ would fail there)
        return {"tokens_per_s": statistics.median(self.rates), "runs": self.rates, "tokens": self.tokens}


def bench_hf_generate(prompts: list[list[int]], args) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from outrider.models import resolve_model

    model = AutoModelForCausalLM.from_pretrained(str(resolve_model("smollm2-135m-instruct")), dtype=torch.bfloat16).eval()

    def run(count: int, n: int, max_tokens: int) -> int:
        tokens = 0
        for prompt in prompts[:count]:
            ids = torch.tensor([prompt])
            out = model.generate(ids, do_sample=True, temperature=1.0, top_k=0, num_return_sequences=n,
                                 max_new_tokens=max_tokens, min_new_tokens=max_tokens, pad_token_id=2)
            tokens += (out.shape[1] - ids.shape[1]) * out.shape[0]
        return tokens

    run(1, 2, 8)  # warm-up
    start = time.perf_counter()
    tokens = run(len(prompts), args.n, args.max_tokens)
    return {"tokens_per_s": tokens / (time.perf_counter() - start), "tokens": tokens}


async def measure(args, folder: Path) -> dict:
    results: dict = {}
    services = {"vllm": start_service("vllm", args, folder)}
    try:
        if not args.skip_hf:
            services["hf"] = start_service("hf", args, folder)
        prompts = prompt_ids(services["vllm"][1])
        a = ServiceRunner(services["vllm"][1], prompts, args)
        b = InProcessVllm(prompts, args)
        await b.warm_up()
        c = ServiceRunner(services["hf"][1], prompts, args) if "hf" in services else None
        # One unmeasured full-size round first: the first touches of fresh memory are slow on this VM.
        a.run(-1)
        await b.run(-1)
        if c is not None:
            c.run(-1)
        for runner in (a, b, c):
            if runner is not None:
                runner.rates.clear()
        for repeat in range(args.repeats):
            a.run(repeat)
            await b.run(repeat)
            if c is not None:
                c.run(repeat)
            print(f"repeat {repeat}: a {a.rates[-1]:.0f}, b {b.rates[-1]:.0f}"
                  + (f", c {c.rates[-1]:.0f}" if c else "") + " tokens/s", flush=True)
        results["a_grpc_vllm"] = a.summary()
        results["b_vllm_inprocess"] = b.summary()
        if c is not None:
            results["c_grpc_hf"] = c.summary()
        print(json.dumps(results), flush=True)
    finally:
        for process, _ in services.values():
            stop_service(process)
    if args.generate_baseline:
        results["d_hf_generate"] = bench_hf_generate(prompts, args)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--kv-cache-gib", type=int, default=2)
    parser.add_argument("--enforce-eager", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--skip-hf", action="store_true", help="only (a) and (b)")
    parser.add_argument("--generate-baseline", action="store_true", help="also (d), plain transformers generate()")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from outrider.models import materialize

    materialize("smollm2-135m-instruct")
    results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "load_before": os.getloadavg(),
                     "workload": f"{len(QUESTIONS)} prompts x n={args.n} x {args.max_tokens} tokens, SmolLM2-135M bf16"}
    with tempfile.TemporaryDirectory() as tmp:
        results.update(asyncio.run(measure(args, Path(tmp))))
    a, b = results["a_grpc_vllm"]["tokens_per_s"], results["b_vllm_inprocess"]["tokens_per_s"]
    results["ratio_service_over_inprocess"] = a / b
    if "c_grpc_hf" in results:
        results["ratio_vllm_service_over_hf"] = a / results["c_grpc_hf"]["tokens_per_s"]
    if "d_hf_generate" in results:
        results["ratio_vllm_service_over_hf_generate"] = a / results["d_hf_generate"]["tokens_per_s"]
    results["load_after"] = os.getloadavg()
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()

"""`outrider eval` vs vLLM in-process: sampling samples/s on the same prompts, in one run.

    .venv/bin/python bench/eval.py [--scale full|tiny] [--repeats 2] [--out runs/bench-eval/result.json]

How much of vLLM's own sampling speed does `outrider eval` keep (issue 13, goal
ratio >= 0.85)? Both sides do the same generation work: SmolLM2-135M-Instruct (the
policy service's default dtype: the checkpoint's, bf16), the built-in `math`
environment at difficulty 0 with one turn (`rollout.max_turns: 1`), its first T
held-out (test) tasks, n samples each, temperature 1, top-p 1, the same max new
tokens, EOS honoured (completions end where the model stops).

  (a) `outrider eval CONFIG -c base=smollm2-135m-instruct --n N --tasks T` as a
      subprocess: Redis, env service, Celery rollout workers, a policy service on
      vLLM; every episode through gRPC, the env's session and verifier. Its rate is
      measured from what it stores (bench/eval_rates.py): Σ samples over the
      sampling window [first task started by a worker, last task done] of
      EVAL_DIR/logs/activity.jsonl. Start-up, scoring and the report are outside.
      `max_entropy_tokens: 0`: no entropy passes (work that (b) does not do).
  (b) vLLM's AsyncLLM in this process, built by the policy service's own factory
      (bench/vllm_inprocess.py: same engine arguments, environment, dtype) and
      given the same prompt ids with the service's own SamplingParams
      (`VLLMBackend._params`), every request submitted at once (the most vLLM can
      batch); rate = samples / wall time of that generate.

The prompt ids (b) uses come from the env service (`ListTasks` test split,
`CreateSession` at every episode seed) rendered by the policy's chat template
(`PromptRenderer`, what ApplyChatTemplate runs); the bench stops unless every
session of a task renders the same ids, and unless every correct episode that (a)
stored starts with exactly those ids. The sides alternate a, b, a, b, ... (each
with a fresh engine) so drift in the machine's load hits both; reported: medians
and (a)/(b) in samples/s (also generated tokens/s, since completion lengths vary).

`--scale tiny` (4 tasks x 8 samples x 32 tokens, one repeat) checks the path in a
couple of minutes; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

import eval_rates
from vs_trl import machine, outrider_versions

MODEL = "smollm2-135m-instruct"
ENV = "math"
CHECKPOINT = "base"
BENCH = "bench/eval.py"


@dataclass(frozen=True)
class Scale:
    tasks: int
    """Held-out tasks (the env's first `tasks` of its test split)."""
    n: int
    """Samples per task."""
    max_tokens: int
    """New tokens per completion at most (rollout.sampling.max_tokens)."""
    repeats: int


SCALES = {
    "full": Scale(tasks=16, n=32, max_tokens=128, repeats=2),
    # Enough samples that some are correct: the report needs two distinct perplexities (stats.histogram).
    "tiny": Scale(tasks=4, n=8, max_tokens=32, repeats=1),
}


def run_config(args, folder: Path) -> dict:
    """The run config both sides read: (a) through `outrider eval`, (b) for its policy settings."""
    limits = {"max_n": max(64, args.n), "max_prompts": max(64, args.n)}
    return {
        "kind": "run",
        "name": "bench-eval",
        "output_dir": str(folder / "runs"),
        "seed": args.seed,
        "stack": {"services": ["policy", "env"]},
        "policy": {"model": MODEL, "backend": "vllm", "http_port": None, "server": {"metrics_port": None},
                   "limits": limits, "vllm": {"cpu_kv_cache_gib": args.kv_cache_gib}},
        "learner": {"model": MODEL},
        "env": {"builtin_envs": [ENV],
                "builtin_params": {ENV: {"difficulty": "0", "num_test": str(max(200, args.tasks))}}},
        "rollout": {"envs": [ENV], "workers": args.workers, "groups_per_worker": args.groups_per_worker,
                    "max_turns": 1, "sampling": {"temperature": 1.0, "top_p": 1.0, "max_tokens": args.max_tokens}},
        # chunk = n: one Generate of n samples per task, as (b) sends it; no entropy passes.
        "evaluation": {"temperature": 1.0, "boundary": {"chunk": args.n, "max_entropy_tokens": 0}},
    }


def held_out_prompts(run, folder: Path, tasks: int, n: int, seed: int) -> dict[str, list[int]]:
    """task key -> the prompt ids of its episodes, from the env service and the chat template.

    The tasks are those `outrider eval` lists (ListTasks, split "test", limit `tasks`);
    episode j of a task is a session with seed + j, as the rollout workers open it."""
    from outrider.eval import store
    from outrider.models import resolve_model
    from outrider.proto.v1 import common_pb2
    from outrider.clients.env import EnvClient
    from outrider.services.policy.prompts import PromptRenderer
    from outrider.services.policy.servicer import messages
    from outrider.stack import LocalStack

    renderer = PromptRenderer(resolve_model(MODEL))
    env_run = run.model_copy(update={"stack": run.stack.model_copy(update={"services": ["env"]})})
    prompts: dict[str, list[int]] = {}
    with LocalStack(env_run, folder / "prompts") as stack, EnvClient(stack.addresses()["env"], credentials=stack.credentials()) as env:
        found = env.list_tasks(ENV, split="test", limit=tasks)
        if len(found) != tasks:
            raise RuntimeError(f"the {ENV!r} test split has {len(found)} tasks, {tasks} wanted")
        for task in found:
            rendered = set()
            for j in range(n):
                reply = env.create_session(task.env, task.id, seed=seed + j)
                env.close_session(reply.session_id)
                conversation = common_pb2.Conversation(messages=reply.observation.messages, add_generation_prompt=True)
                ids, _ = renderer.render_chat(messages(conversation), True, f"{task.env}/{task.id}")
                rendered.add(tuple(ids))
            if len(rendered) != 1:
                raise RuntimeError(f"{task.env}/{task.id}: its {n} sessions render {len(rendered)} different prompts; "
                                   "(b) sends one prompt per task")
            prompts[store.task_key(task.env, task.id)] = list(rendered.pop())
    return prompts


def run_eval(config: Path, args, folder: Path, repeat: int, prompts: dict[str, list[int]]) -> dict:
    """Side (a): the real command, then its rate from what it stored."""
    from outrider.eval import store

    out = folder / f"eval-{repeat}"
    command = [sys.executable, "-m", "outrider.cli.main", "eval", str(config), "-c", f"{CHECKPOINT}={MODEL}",
               "--n", str(args.n), "--tasks", str(args.tasks), "--seed", str(args.seed), "--out", str(out), "--overwrite"]
    log = folder / f"eval-{repeat}.log"
    print(f"[a] {shlex.join(command)}", flush=True)
    started = time.perf_counter()
    with open(log, "w") as sink:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = []
        for line in process.stdout:
            sink.write(line)
            output.append(line)
            print(f"    {line.rstrip()}", flush=True)
        code = process.wait()
    wall = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"outrider eval exited with status {code}; see {log}")
    samples = list(store.load_samples(out, CHECKPOINT).values())
    activity = [json.loads(line) for line in (out / store.LOGS_DIR / "activity.jsonl").read_text().splitlines() if line.strip()]
    measured = eval_rates.eval_rates(samples, activity, CHECKPOINT)
    if measured["errors"]:
        raise RuntimeError(f"outrider eval: {measured['errors']} episodes failed (see {out / store.LOGS_DIR}); "
                           "the rate would count fewer samples than (b) generates")
    check = eval_rates.prompt_check(prompts, samples, key=lambda s: store.task_key(s.env, s.task_id))
    sampled = {store.task_key(s.env, s.task_id) for s in samples}
    if sampled != set(prompts):
        check["mismatches"].append(f"tasks differ: outrider eval sampled {sorted(sampled)}, the bench has {sorted(prompts)}")
    if check["mismatches"]:
        raise RuntimeError("the prompts of (a) and (b) differ: " + "; ".join(check["mismatches"][:5]))
    return {"variant": "a", "repeat": repeat, **measured, "command_wall_s": wall,
            "outside_window_s": wall - measured["seconds"],
            "terminal_samples_per_s": eval_rates.progress_rate("".join(output), f"{CHECKPOINT} [1/1]"),
            "prompt_check": check, "eval_dir": str(out), "log": str(log)}


async def run_inprocess(policy_cfg, run, prompts: dict[str, list[int]], n: int, repeat: int) -> dict:
    """Side (b): a fresh engine, every task's prompt with n samples at once, timed."""
    from vllm.inputs import TokensPrompt
    from vllm.sampling_params import RequestOutputKind

    from outrider.services.policy.backend import SamplingSpec
    from vllm_inprocess import service_backend, start_engine, stop_engine

    backend, _ = service_backend(policy_cfg)
    sampling, budget = run.rollout.sampling, run.rollout.max_episode_tokens
    began = time.perf_counter()
    engine = start_engine(backend)
    engine_start = time.perf_counter() - began
    try:
        async def one(prompt: list[int]) -> list[int]:
            # What the rollout asks for (episodes.GroupPlayer._turn) and the service turns into
            # SamplingParams (VLLMBackend._params): temperature, top-p/k, max_tokens within the budget.
            spec = SamplingSpec(n=n, temperature=run.evaluation.temperature, top_p=sampling.top_p, top_k=sampling.top_k,
                                max_tokens=min(sampling.max_tokens, budget - len(prompt)))
            params = backend._params(spec, len(prompt), RequestOutputKind.FINAL_ONLY)
            final = None
            async for output in engine.generate(TokensPrompt(prompt_token_ids=prompt), params, uuid.uuid4().hex):
                final = output
            return [len(c.token_ids) for c in final.outputs]

        started = time.perf_counter()
        lengths = [length for per_task in await asyncio.gather(*(one(p) for p in prompts.values())) for length in per_task]
        seconds = time.perf_counter() - started
    finally:
        stop_engine(engine)
        del engine
    if len(lengths) != n * len(prompts):
        raise RuntimeError(f"vLLM returned {len(lengths)} completions, {n * len(prompts)} asked for")
    return {"variant": "b", "repeat": repeat, **eval_rates.rates(len(lengths), sum(lengths), seconds),
            "engine_start_s": engine_start, "dtype": str(backend.dtype).removeprefix("torch."), "device": backend.device,
            "max_context": backend.max_context}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="full",
                        help="full: 16 tasks x 32 samples x 128 tokens, 2 repeats; tiny: smoke test")
    parser.add_argument("--tasks", type=int, help="held-out tasks (default: the scale's)")
    parser.add_argument("--n", type=int, help="samples per task (default: the scale's)")
    parser.add_argument("--max-tokens", type=int, help="new tokens per completion at most (default: the scale's)")
    parser.add_argument("--repeats", type=int, help="rounds of a then b (default: 2 full, 1 tiny)")
    parser.add_argument("--workers", type=int, default=2, help="rollout.workers of (a)")
    parser.add_argument("--groups-per-worker", type=int, default=4, help="rollout.groups_per_worker of (a)")
    parser.add_argument("--kv-cache-gib", type=int, default=2, help="policy.vllm.cpu_kv_cache_gib (both sides)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-eval/result.json"))
    args = parser.parse_args(argv)
    scale = SCALES[args.scale]
    for name in ("tasks", "n", "max_tokens", "repeats"):
        if getattr(args, name) is None:
            setattr(args, name, getattr(scale, name))
    if min(args.tasks, args.n, args.max_tokens, args.repeats) < 1:
        parser.error("--tasks, --n, --max-tokens and --repeats must be at least 1")
    if args.n > 1024:
        parser.error("--n: outrider eval takes at most 1024 samples per task")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from outrider.config import load_config
    from outrider.models import materialize, resolve_model

    folder = args.out.parent.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc)
    materialize(MODEL)
    config = folder / "bench-eval.yaml"
    config.write_text(yaml.safe_dump(run_config(args, folder), sort_keys=False))
    run = load_config(config)
    policy_cfg = run.policy.model_copy(update={"model": str(resolve_model(MODEL))})  # as `outrider eval` serves it
    print(f"[bench] {args.scale} scale: {MODEL}, {ENV} difficulty 0, 1 turn, {args.tasks} tasks x n={args.n}, "
          f"max {args.max_tokens} new tokens, {args.repeats} repeat(s); (a) {args.workers} workers x "
          f"{args.groups_per_worker} groups", flush=True)
    prompts = held_out_prompts(run, folder, args.tasks, args.n, args.seed)
    print(f"[bench] prompts: {len(prompts)} tasks, {min(map(len, prompts.values()))}-{max(map(len, prompts.values()))} ids",
          flush=True)
    result = {
        "bench": BENCH,
        "date": started.isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join([BENCH, *argv]),
        "scale": args.scale,
        "settings": {**asdict(Scale(args.tasks, args.n, args.max_tokens, args.repeats)), "model": MODEL, "env": ENV,
                     "difficulty": "0", "max_turns": 1, "temperature": run.evaluation.temperature,
                     "top_p": run.rollout.sampling.top_p, "top_k": run.rollout.sampling.top_k,
                     "max_episode_tokens": run.rollout.max_episode_tokens, "workers": args.workers,
                     "groups_per_worker": args.groups_per_worker, "chunk": args.n, "kv_cache_gib": args.kv_cache_gib,
                     "seed": args.seed, "max_entropy_tokens": 0, "run_config": str(config)},
        "prompts": {key: len(ids) for key, ids in prompts.items()},
        "machine": machine(),
        "versions": outrider_versions(),
        "runs": [],
    }
    try:
        for repeat in range(args.repeats):  # alternating, never overlapping: they share the cores
            print(f"[bench] === repeat {repeat}: (a) outrider eval ===", flush=True)
            result["runs"].append(run_eval(config, args, folder, repeat, prompts))
            print(f"[bench] === repeat {repeat}: (b) vLLM in-process ===", flush=True)
            result["runs"].append(asyncio.run(run_inprocess(policy_cfg, run, prompts, args.n, repeat)))
            a, b = result["runs"][-2:]
            print(f"[bench] repeat {repeat}: (a) {a['samples_per_s']:.2f} samples/s over {a['seconds']:.1f} s "
                  f"(prompts checked on {a['prompt_check']['solutions_checked']} stored solutions of "
                  f"{a['prompt_check']['tasks_checked']}/{a['prompt_check']['tasks']} tasks), "
                  f"(b) {b['samples_per_s']:.2f} samples/s over {b['seconds']:.1f} s", flush=True)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    result["summary"] = eval_rates.summarize(result["runs"])
    result["settings"]["dtype"] = result["runs"][-1]["dtype"]
    result["settings"]["device"] = result["runs"][-1]["device"]
    result["machine"]["load_average_at_end"] = list(os.getloadavg())
    result["seconds"] = (datetime.now(timezone.utc) - started).total_seconds()
    args.out.write_text(json.dumps(result, indent=2))

    m, s = result["machine"], result["settings"]
    checked = [r["prompt_check"] for r in result["runs"] if r["variant"] == "a"]
    print()
    print(f"machine: {m['usable_cores']} cores ({m['cores']} online), {m['cpu_model']}, {m['memory_gib']} GiB; "
          f"load {m['load_average_at_start'][0]:.1f} -> {m['load_average_at_end'][0]:.1f}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items() if v))
    print(f"date: {result['date']}  command: {result['command']}")
    print(f"workload: {MODEL} ({s['dtype']}, {s['device']}), {ENV} difficulty 0, 1 turn, {s['tasks']} tasks x n={s['n']}, "
          f"max {s['max_tokens']} new tokens, temperature {s['temperature']}; (a) {s['workers']} workers x "
          f"{s['groups_per_worker']} groups; prompt ids identical on {sum(c['solutions_checked'] for c in checked)} "
          f"stored solutions of {max(c['tasks_checked'] for c in checked)}/{s['tasks']} tasks")
    print()
    print(eval_rates.table(result["summary"]))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

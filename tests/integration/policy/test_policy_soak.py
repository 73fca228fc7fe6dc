"""Soak: 64 concurrent clients against one policy service process (HF backend, tiny-random) over
real gRPC for OUTRIDER_SOAK_SECONDS (default 60, what CI runs; docs/benchmarks.md reports a 120 s run).

Admission is set below the client count (48 of 64 at once) so refusals for load happen and are
retried the way a client should: after the `retry-after-ms` the refusal carries. Passes when
no call fails with anything but RESOURCE_EXHAUSTED, every client completes calls, and the
service's resident memory stays within its post-warm-up value + RSS_HEADROOM_BYTES; prints
p50/p99 latency (docs/benchmarks.md, "Policy soak")."""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from collections import Counter

import grpc
import pytest

from outrider.proto.v1 import common_pb2, policy_pb2, policy_pb2_grpc
from testkit.policy import policy_config
from testkit.service_process import ServiceProcess

pytestmark = pytest.mark.slow

CLIENTS = 64
ADMITTED = 48
RETRY_AFTER_MS = 50
PROMPT = [1, 4093, 198, 6004, 2, 198, 1, 520, 9531, 198]
MIB = 2**20
RSS_HEADROOM_BYTES = 256 * MIB
"""Growth allowed over the soak. Every call is small (at most 3 prompts x 2 completions x 8
new tokens of a 2-layer model), so the working set is the batch's activations and caches,
a few MiB; a server leaking 8 KiB a call crosses the bound in the ~30,000 calls of 1 minute."""


def soak_seconds() -> float:
    """OUTRIDER_SOAK_SECONDS (default 60)."""
    value = os.environ.get("OUTRIDER_SOAK_SECONDS", "60")
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"OUTRIDER_SOAK_SECONDS must be a number, got {value!r}") from None
    if seconds <= 0:
        raise ValueError(f"OUTRIDER_SOAK_SECONDS must be positive, got {seconds}")
    return seconds


def _request(rng: random.Random, seed: int) -> tuple[policy_pb2.GenerateRequest, int, int, int]:
    prompts, n, max_tokens = rng.randint(1, 3), rng.randint(1, 2), rng.randint(2, 8)
    request = policy_pb2.GenerateRequest(
        prompts=[policy_pb2.Prompt(token_ids=common_pb2.TokenIds(ids=PROMPT[: 3 + p])) for p in range(prompts)],
        sampling=policy_pb2.SamplingParams(n=n, max_tokens=max_tokens, temperature=1.0, seed=seed, ignore_eos=True),
    )
    return request, prompts, n, max_tokens


class Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.per_client: Counter = Counter()
        self.refused = 0
        self.hints: Counter = Counter()
        self.errors: list[str] = []


async def _client(stub, client_id: int, deadline: float, tally: Tally) -> None:
    rng = random.Random(client_id)
    calls = 0
    while time.monotonic() < deadline:
        request, prompts, n, max_tokens = _request(rng, client_id * 1_000_000 + calls)
        calls += 1
        started = time.monotonic()
        try:
            if rng.random() < 0.5:
                reply = await stub.Generate(request, timeout=120)
                lengths = [len(c.token_ids) for r in reply.results for c in r.completions]
            else:
                counts: Counter = Counter()
                async for chunk in stub.GenerateStream(request, timeout=120):
                    counts[(chunk.prompt_index, chunk.completion_index)] += len(chunk.token_ids)
                lengths = list(counts.values())
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                tally.refused += 1
                hint = dict(exc.trailing_metadata() or ()).get("retry-after-ms")
                tally.hints[hint] += 1
                await asyncio.sleep(int(hint or RETRY_AFTER_MS) / 1000)
                continue
            tally.errors.append(f"client {client_id}: {exc.code().name}: {exc.details()}")
            continue
        if lengths != [max_tokens] * (prompts * n):  # ignore_eos: every completion is exactly max_tokens long
            tally.errors.append(f"client {client_id}: completion lengths {lengths}, expected {prompts * n} x {max_tokens}")
            continue
        tally.latencies.append(time.monotonic() - started)
        tally.per_client[client_id] += 1


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q % of the values at or below it."""
    ordered = sorted(values)
    rank = math.ceil(len(ordered) * q / 100)  # 1-based
    return ordered[max(rank, 1) - 1]


async def _soak(address: str, seconds: float, service: ServiceProcess) -> tuple[Tally, int]:
    tally = Tally()
    peak = 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = policy_pb2_grpc.PolicyServiceStub(channel)
        deadline = time.monotonic() + seconds
        clients = asyncio.gather(*(_client(stub, i, deadline, tally) for i in range(CLIENTS)))
        while not clients.done():
            peak = max(peak, service.rss())
            await asyncio.wait([clients], timeout=2.0)
        await clients
    return tally, max(peak, service.rss())


def test_64_clients_for_the_soak_duration(tmp_path):
    seconds = soak_seconds()
    cfg = policy_config("hf", http_port=None, limits={"max_concurrent_requests": ADMITTED, "overload_retry_after_ms": RETRY_AFTER_MS})
    with ServiceProcess.start("policy", cfg, tmp_path) as service:
        warm_up, _ = asyncio.run(_soak(service.address, 5.0, service))
        assert not warm_up.errors, warm_up.errors[:5]
        baseline = service.rss()
        tally, peak = asyncio.run(_soak(service.address, seconds, service))
        after = service.rss()
    calls = len(tally.latencies)
    p50, p99 = _percentile(tally.latencies, 50), _percentile(tally.latencies, 99)
    print(f"\nsoak: {CLIENTS} clients, {seconds:.0f} s: {calls} calls ({calls / seconds:.1f}/s), "
          f"{tally.refused} RESOURCE_EXHAUSTED (hints {dict(tally.hints)}), {len(tally.errors)} other errors; "
          f"latency p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {max(tally.latencies) * 1000:.0f} ms; "
          f"service RSS {baseline / MIB:.0f} -> peak {peak / MIB:.0f}, after {after / MIB:.0f} MiB")
    assert not tally.errors, tally.errors[:10]
    assert all(tally.per_client[i] >= 1 for i in range(CLIENTS)), sorted(tally.per_client.items())
    assert set(tally.hints) <= {str(RETRY_AFTER_MS)}, tally.hints
    assert peak <= baseline + RSS_HEADROOM_BYTES, (baseline, peak)

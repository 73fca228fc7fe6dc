"""Concurrency, overload and atomic weight swaps under real load."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import grpc
import pytest

from outrider.models import resolve_model
from outrider.proto.v1 import common_pb2, policy_pb2, policy_pb2_grpc

PROMPT = [1, 4093, 198, 6004, 2, 198, 1, 520, 9531, 198]


def request(prompts: int, n: int, max_tokens: int, seed: int) -> policy_pb2.GenerateRequest:
    return policy_pb2.GenerateRequest(
        prompts=[policy_pb2.Prompt(token_ids=common_pb2.TokenIds(ids=PROMPT[: 3 + p])) for p in range(prompts)],
        sampling=policy_pb2.SamplingParams(n=n, max_tokens=max_tokens, temperature=1.0, seed=seed, ignore_eos=True),
    )


async def one_client(stub, client_id: int, deadline: float) -> int:
    """Random unary and streaming calls until the deadline; checks every response is complete."""
    rng = random.Random(client_id)
    done = 0
    while time.monotonic() < deadline:
        prompts, n, max_tokens = rng.randint(1, 3), rng.randint(1, 4), rng.randint(2, 12)
        req = request(prompts, n, max_tokens, seed=client_id * 1000 + done)
        if rng.random() < 0.5:
            reply = await stub.Generate(req, timeout=120)
            assert len(reply.results) == prompts
            for result in reply.results:
                assert len(result.completions) == n
                for c in result.completions:
                    # ignore_eos: exactly max_tokens, each with its logprob
                    assert len(c.token_ids) == len(c.logprobs) == max_tokens
                    assert c.finish_reason == common_pb2.FINISH_REASON_LENGTH
        else:
            tokens: dict[tuple[int, int], int] = {}
            finished = set()
            async for chunk in stub.GenerateStream(req, timeout=120):
                key = (chunk.prompt_index, chunk.completion_index)
                tokens[key] = tokens.get(key, 0) + len(chunk.token_ids)
                if chunk.finish_reason:
                    finished.add(key)
            assert finished == {(p, j) for p in range(prompts) for j in range(n)}
            assert set(tokens.values()) == {max_tokens}
        done += 1
    return done


async def test_32_concurrent_clients(server):
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = policy_pb2_grpc.PolicyServiceStub(channel)
        deadline = time.monotonic() + 8
        counts = await asyncio.gather(*(one_client(stub, i, deadline) for i in range(32)))
    print(f"{sum(counts)} requests from 32 clients in ~8 s ({server.cfg.backend})")
    assert all(count >= 1 for count in counts)


def test_overload_is_resource_exhausted_and_recovers(server, client):
    """With the limit at 2, two admitted requests (held behind a weights swap, as during a
    real update) fill it; the third is refused at once on gRPC and HTTP (429), with the retry
    hint of limits.overload_retry_after_ms: 1500 ms, `Retry-After: 2` (seconds, rounded up)."""
    import httpx

    core = server.server.core
    limits = core.limits
    original, original_hint = limits.max_concurrent_requests, limits.overload_retry_after_ms
    release: dict = {}

    async def hold_swap(started: threading.Event):
        release["event"] = asyncio.Event()
        async with core.gate.writing():
            started.set()
            await release["event"].wait()

    started = threading.Event()
    holder = threading.Thread(target=server.call, args=(hold_swap(started),))
    limits.max_concurrent_requests, limits.overload_retry_after_ms = 2, 1500
    try:
        holder.start()
        assert started.wait(30)
        replies = []
        waiting = [threading.Thread(target=lambda: replies.append(client.generate([PROMPT], max_tokens=4))) for _ in range(2)]
        for thread in waiting:
            thread.start()
        deadline = time.monotonic() + 30
        while core.in_flight < 2:
            assert time.monotonic() < deadline, "requests were not admitted"
            time.sleep(0.01)
        with pytest.raises(grpc.RpcError) as failure:
            client.generate([PROMPT], max_tokens=4)
        assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "overloaded" in failure.value.details() and "limits.max_concurrent_requests" in failure.value.details()
        assert failure.value.details().endswith("; retry in 1500 ms")
        assert ("retry-after-ms", "1500") in tuple(failure.value.trailing_metadata())
        http = httpx.post(f"{server.http_url}/completions", json={"model": "tiny-random", "prompt": PROMPT, "max_tokens": 2})
        assert http.status_code == 429 and "overloaded" in http.json()["error"]["message"]
        assert (http.headers["retry-after"], http.headers["retry-after-ms"]) == ("2", "1500")
    finally:
        server.loop.call_soon_threadsafe(release["event"].set)
        holder.join(30)
        for thread in waiting:
            thread.join(60)
        limits.max_concurrent_requests, limits.overload_retry_after_ms = original, original_hint
    assert len(replies) == 2 and all(len(r.results[0].completions[0].token_ids) >= 1 for r in replies)
    assert len(client.generate([PROMPT], max_tokens=3).results) == 1


def test_weight_swap_waits_for_in_flight_requests(server, client):
    """An update arriving during a long generation: the generation finishes on the old
    version, a request arriving during the swap runs on the new one."""
    core = server.server.core
    old = client.info().policy_version
    long_request = dict(n=8, max_tokens=128, temperature=1.0, ignore_eos=True, seed=3)
    box: dict = {}

    def run(name, call):
        box[name] = call()
        box[f"{name}_at"] = time.monotonic()

    first = threading.Thread(target=run, args=("first", lambda: client.generate([PROMPT] * 2, **long_request)))
    first.start()
    while core.in_flight < 1:
        time.sleep(0.005)
    update = threading.Thread(target=run, args=("update", lambda: client.update_weights_from_path(old + 1, resolve_model("tiny-random"))))
    update.start()
    while not core.gate.updating:
        time.sleep(0.005)
    assert "first" not in box, "the long generation ended before the update began; the test proves nothing"
    late = threading.Thread(target=run, args=("late", lambda: client.generate([PROMPT], max_tokens=2)))
    late.start()
    for thread in (first, update, late):
        thread.join(300)
    assert box["first"].policy_version == old
    assert all(len(c.token_ids) == 128 for r in box["first"].results for c in r.completions)
    assert (box["update"].previous_version, box["update"].version) == (old, old + 1)
    assert box["update_at"] >= box["first_at"]
    assert box["late"].policy_version == old + 1


def test_a_cancelled_stream_releases_its_slot_and_the_weights(server, client):
    core = server.server.core
    stream = client.generate_stream([PROMPT], n=4, max_tokens=256, temperature=1.0, ignore_eos=True, seed=1)
    next(stream)
    stream.cancel()
    deadline = time.monotonic() + 30
    while core.in_flight:
        assert time.monotonic() < deadline, "the cancelled stream still counts as in flight"
        time.sleep(0.01)
    version = client.info().policy_version
    started = time.monotonic()
    assert client.update_weights_from_path(version + 1, resolve_model("tiny-random")).version == version + 1
    assert time.monotonic() - started < 30

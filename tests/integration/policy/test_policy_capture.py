"""Captured agent sessions: an agent's calls through `/sessions/<id>/v1`, recorded in Redis
and assembled into trajectories, token for token.

The agent here is the official `openai` client, used as agents use it (the reply message
appended to the history as it came back). The model is the tiny one trained to write a
known tool call (testkit.tool_model), served by the HF backend in float32; the expected
tokens are the ones each response reported to the agent, and the expected log-probs come
from a plain HF forward pass (testkit.policy.hf_logprobs) and from ScoreTokens.
"""

from __future__ import annotations

import json

import openai
import pytest
import redis
from transformers import AutoTokenizer

from outrider.clients.policy import PolicyClient
from outrider.rollout.assembly import assemble
from outrider.transport.capture import CaptureStore
from testkit.policy import hf_logprobs, max_abs_diff
from testkit.tool_model import ASK, CALL, MODEL, REPLY, TOOLS


@pytest.fixture
def folder(tool_model):
    return tool_model


@pytest.fixture
def server(tool_server):
    return tool_server


@pytest.fixture(scope="module")
def store(any_redis_url, capture_prefix):
    client = redis.Redis.from_url(any_redis_url)
    yield CaptureStore(client, capture_prefix)
    client.close()


def agent(server, session_id: str) -> openai.OpenAI:
    base = server.http_url.removesuffix("/v1")
    return openai.OpenAI(base_url=f"{base}/sessions/{session_id}/v1", api_key="unused", max_retries=0, timeout=120)


def chat(client, messages, **extra):
    return client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, temperature=0,
                                          extra_body={"return_token_ids": True}, **extra)


def served(reply) -> tuple[list[int], list[int]]:
    choice = reply.choices[0]
    return choice.model_extra["prompt_token_ids"], choice.model_extra["token_ids"]


def test_three_calls_with_a_tool_call_assemble_into_one_exact_sequence(server, store, folder):
    session = store.open(label="weather")
    client = agent(server, session)
    first = chat(client, ASK, max_tokens=64)
    [call] = first.choices[0].message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == CALL
    history = [*ASK, first.choices[0].message.model_dump(), {"role": "tool", "tool_call_id": call.id, "content": "18 C"}]
    second = chat(client, history, max_tokens=8)
    history += [second.choices[0].message.model_dump(), {"role": "user", "content": "Thanks!"}]
    third = chat(client, history, max_tokens=8)
    store.close(session)

    (p1, c1), (p2, c2), (p3, c3) = served(first), served(second), served(third)
    # Each prompt extends the one before with its completion, token for token...
    assert p2[: len(p1) + len(c1)] == p1 + c1 and p3[: len(p2) + len(c2)] == p2 + c2
    # ...and reads as the chat template writes the conversation (what transformers renders).
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    conversation = [*ASK, {"role": "assistant", "content": "", "tool_calls": [
        {"id": call.id, "type": "function", "function": {"name": CALL[0], "arguments": CALL[1]}}]},
        {"role": "tool", "tool_call_id": call.id, "content": "18 C"}]
    assert tokenizer.decode(p2) == tokenizer.apply_chat_template(conversation, tools=TOOLS, tokenize=False,
                                                                  add_generation_prompt=True)
    assert tokenizer.decode(c1, skip_special_tokens=True) == REPLY

    calls = store.calls(session)
    assert [c.spliced for c in calls] == [False, True, True]
    [trajectory], report = assemble(calls, "episode")
    assert (report.sequences, report.breaks) == (1, [])
    expected = p1 + c1 + p2[len(p1) + len(c1):] + c2 + p3[len(p2) + len(c2):] + c3
    assert list(trajectory.token_ids) == expected
    masked = [len(p1) + i for i in range(len(c1))] + [len(p2) + i for i in range(len(c2))] + \
             [len(p3) + i for i in range(len(c3))]
    assert [i for i, m in enumerate(trajectory.loss_mask) if m] == masked

    # The sampled log-probs are the policy's own: ScoreTokens of the assembled tokens gives them
    # back to 1e-5 (HF float32; vLLM on CPU: ~1e-6, its prefill and decode kernels round
    # differently), and so does a plain HF forward pass (vLLM: to 1e-3, other kernels).
    sampled = [trajectory.logprobs[i] for i in masked]
    start = trajectory.prompt_length
    scored = PolicyClient(server.address).score_tokens([(expected, start)]).sequences[0].logprobs
    assert max_abs_diff([sampled], [[scored[i - start] for i in masked]]) < 1e-5
    [reference] = hf_logprobs(folder, [(expected, start)])
    assert max_abs_diff([sampled], [[reference[i - start] for i in masked]]) < (1e-3 if server.backend == "vllm" else 1e-5)


def test_a_rewritten_history_starts_a_second_sequence_of_the_episode(server, store):
    session = store.open()
    client = agent(server, session)
    first = chat(client, ASK, max_tokens=64)
    second = chat(client, [{"role": "user", "content": "Summary: the user asked for the weather in Paris."}],
                  max_tokens=4)
    (p1, c1), (p2, c2) = served(first), served(second)
    sequences, report = assemble(store.calls(session), "episode")
    assert report.breaks == [1]
    assert [list(s.token_ids) for s in sequences] == [p1 + c1, p2 + c2]
    assert [list(s.loss_mask) for s in sequences] == [[False] * len(p1) + [True] * len(c1),
                                                      [False] * len(p2) + [True] * len(c2)]


def test_a_streamed_call_is_recorded_with_the_tokens_it_streamed(server, store):
    session = store.open()
    streamed = []
    for chunk in agent(server, session).chat.completions.create(
            model=MODEL, messages=ASK, tools=TOOLS, temperature=0, max_tokens=64, stream=True,
            extra_body={"return_token_ids": True}):
        streamed += chunk.choices[0].model_extra.get("token_ids") or []
    [record] = store.calls(session)
    assert record.streamed and list(record.completion_token_ids) == streamed
    assert len(record.reply_tool_call_ids) == 1  # the call the stream ended with


def test_the_call_is_in_redis_when_the_agent_has_its_answer(server, store):
    session = store.open()
    client = agent(server, session)
    for n in (1, 2):
        chat(client, ASK, max_tokens=2)
        assert len(store.calls(session)) == n


def test_bad_session_requests_get_clear_errors_and_the_service_keeps_serving(server, store):
    with pytest.raises(openai.NotFoundError, match="unknown session"):
        chat(agent(server, "x" * 22), ASK, max_tokens=2)
    with pytest.raises(openai.NotFoundError):
        chat(agent(server, "../../v1"), ASK, max_tokens=2)
    closed = store.open()
    store.close(closed)
    with pytest.raises(openai.ConflictError, match="closed"):
        chat(agent(server, closed), ASK, max_tokens=2)

    session = store.open()
    client = agent(server, session)
    with pytest.raises(openai.BadRequestError) as several:
        chat(client, ASK, max_tokens=2, n=2)
    assert several.value.body["param"] == "n" and "one completion per call" in several.value.body["message"]
    with pytest.raises(openai.BadRequestError) as bad_tools:
        client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=2,
                                       tools=[{"type": "function", "function": {"name": ""}}])
    assert bad_tools.value.body["param"].startswith("tools")
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        chat(client, ASK, max_tokens=10**6)
    with pytest.raises(openai.BadRequestError, match="tokens"):
        chat(client, [{"role": "user", "content": "word " * 5000}], max_tokens=2)
    assert store.calls(session) == []  # refused calls leave no record
    assert chat(client, ASK, max_tokens=2).choices[0].finish_reason in ("length", "stop", "tool_calls")
    assert len(store.calls(session)) == 1

"""What one request may cost the policy service, measured on the service's own process.

A prompt that cannot fit the context is refused on its byte length, before it is tokenized
(validation.check_prompt_bytes), on gRPC and the OpenAI HTTP API, and the service's memory
stays bounded: a 50 MB prompt took the tokenizer's process from 0.6 to 7.8 GB before. JSON
nested past Python's recursion limit is a 400 naming the field, never a 500.

tiny-random's longest token is "\\n" followed by 80 spaces, 81 bytes, so with a context of 512
tokens the limit is 512 x 81 = 41,472 bytes. The server runs in its own process, so its
resident memory is what is measured (not the test's, which builds the 50 MB requests)."""

from __future__ import annotations

import shutil
import time

import grpc
import httpx
import pytest

from outrider.models import resolve_model
from outrider.models.chat_templates import TOOLS_TEMPLATE
from outrider.proto.v1 import common_pb2, policy_pb2, policy_pb2_grpc
from outrider.services.policy.prompts import PromptRenderer
from testkit.policy import policy_config
from testkit.service_process import ServiceProcess

CONTEXT = 512
BYTES_PER_TOKEN = 81  # len("\n" + " " * 80), tiny-random's longest token
LIMIT = CONTEXT * BYTES_PER_TOKEN  # 41,472
HUGE = 50 * 2**20

MIB = 2**20
RSS_BOUND = 8 * HUGE
"""How far the service's memory (peak and after) may grow for 50 MiB requests: on gRPC a
request is held about 5 times at once (C-core's receive slices and their flattened copy, the
bytes handed to the decoder, the decoded message, the prompt as a Python string; on HTTP the
body, the parsed JSON, the validated model), and the allocator keeps part of it afterwards.
Measured on the 2-core EPYC: gRPC peak +306 MiB and +206 MiB after (a Generate and a Tokenize
of 50 MiB each), HTTP peak +54 MiB. Tokenizing one 50 MiB prompt took 7.2 GB more."""


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """tiny-random with Qwen2.5's chat template (it renders tools and tool calls)."""
    folder = tmp_path_factory.mktemp("request-cost")
    model = folder / "tiny-tools"
    shutil.copytree(resolve_model("tiny-random"), model, ignore=shutil.ignore_patterns(".outrider-*"))
    (model / "chat_template.jinja").write_text(TOOLS_TEMPLATE)
    cfg = policy_config("hf", model=str(model), served_model_name="tiny-random", http_port=0, limits={"max_context": CONTEXT},
                        server={"max_message_bytes": 64 * MIB, "metrics_port": None, "grace_s": 1})
    with ServiceProcess.start("policy", cfg, folder) as running:
        yield running


@pytest.fixture(scope="module")
def stub(service):
    options = [("grpc.max_send_message_length", 64 * MIB), ("grpc.max_receive_message_length", 64 * MIB)]
    with grpc.insecure_channel(service.address, options=options) as channel:
        yield policy_pb2_grpc.PolicyServiceStub(channel)


def test_bytes_per_token_is_the_longest_token():
    renderer = PromptRenderer(resolve_model("tiny-random"))
    assert renderer.bytes_per_token == BYTES_PER_TOKEN
    assert renderer.tokenize("\n" + " " * 80, add_special_tokens=False) == [renderer.tokenizer.convert_tokens_to_ids("Ċ" + "Ġ" * 80)]


def _generate(text: str) -> policy_pb2.GenerateRequest:
    return policy_pb2.GenerateRequest(prompts=[policy_pb2.Prompt(text=text)], sampling=policy_pb2.SamplingParams(max_tokens=1))


def _refused(call, request) -> str:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=60)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    return info.value.details()


def test_at_the_limit_the_tokens_decide_above_it_the_bytes(stub):
    at_limit = _refused(stub.Generate, _generate("a" * LIMIT))
    assert "tokens leaves no room in the context of 512 tokens" in at_limit  # tokenized, then refused
    above = _refused(stub.Generate, _generate("a" * (LIMIT + 1)))
    assert above.startswith(f"prompts[0].text: {LIMIT + 1} bytes exceed the limit of {LIMIT} bytes for a prompt (512 tokens")
    assert "x 81 bytes" in above
    # Multi-byte text counts its UTF-8 bytes: 13,825 x "é€" is 13,825 x 5 = 69,125 bytes, 27,650 characters.
    assert _refused(stub.Generate, _generate("é€" * 13_825)).startswith("prompts[0].text: 69125 bytes exceed")


def test_a_50_mb_grpc_prompt_is_refused_quickly_in_bounded_memory(service, stub):
    rss, peak = service.rss(), service.rss("VmHWM")
    started = time.monotonic()
    details = _refused(stub.Generate, _generate("x" * HUGE))
    seconds = time.monotonic() - started
    assert details.startswith(f"prompts[0].text: {HUGE} bytes exceed the limit of {LIMIT} bytes")
    tokenize = _refused(stub.Tokenize, policy_pb2.TokenizeRequest(texts=["hello", "y" * HUGE]))
    assert tokenize.startswith(f"texts[1]: {HUGE} bytes exceed the limit of {LIMIT} bytes")
    grew, peak_grew = service.rss() - rss, service.rss("VmHWM") - peak
    print(f"50 MiB gRPC prompt refused in {seconds:.2f} s; RSS +{grew / MIB:.0f} MiB, peak +{peak_grew / MIB:.0f} MiB")
    assert seconds < 20
    assert grew < RSS_BOUND and peak_grew < RSS_BOUND


def test_chat_messages_count_together(stub):
    """Two messages of 30,000 bytes each: each is below the limit, together (60,000) above."""
    conversation = common_pb2.Conversation(messages=[
        common_pb2.ChatMessage(role="user", content="a" * 30_000), common_pb2.ChatMessage(role="assistant", content="b" * 30_000),
    ], add_generation_prompt=True)
    details = _refused(stub.ApplyChatTemplate, policy_pb2.ApplyChatTemplateRequest(conversations=[conversation]))
    assert details.startswith(f"conversations[0].messages: 60000 bytes exceed the limit of {LIMIT} bytes")
    generate = policy_pb2.GenerateRequest(prompts=[policy_pb2.Prompt(conversation=conversation)])
    assert _refused(stub.Generate, generate).startswith("prompts[0].conversation.messages: 60000 bytes exceed")


def test_a_50_mb_http_prompt_is_refused_quickly_in_bounded_memory(service):
    rss, peak = service.rss(), service.rss("VmHWM")
    started = time.monotonic()
    with httpx.Client(timeout=60) as http:
        reply = http.post(f"{service.http_url}/completions", json={"model": "tiny-random", "prompt": "x" * HUGE, "max_tokens": 1})
        seconds = time.monotonic() - started
        chat = http.post(f"{service.http_url}/chat/completions", json={"model": "tiny-random", "max_tokens": 1, "messages": [
            {"role": "user", "content": "a" * 30_000}, {"role": "user", "content": [{"type": "text", "text": "b" * 30_000}]}]})
        several = http.post(f"{service.http_url}/completions", json={"prompt": ["ok", "z" * (LIMIT + 1)], "max_tokens": 1})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert (error["param"], error["code"]) == ("prompt", "INVALID_ARGUMENT")
    assert error["message"].startswith(f"prompt: {HUGE} bytes exceed the limit of {LIMIT} bytes")
    assert chat.status_code == 400 and chat.json()["error"]["param"] == "messages", chat.text
    assert chat.json()["error"]["message"].startswith(f"messages: 60000 bytes exceed the limit of {LIMIT} bytes")
    assert several.status_code == 400 and several.json()["error"]["param"] == "prompt[1]", several.text
    grew, peak_grew = service.rss() - rss, service.rss("VmHWM") - peak
    print(f"50 MiB HTTP prompt refused in {seconds:.2f} s; RSS +{grew / MIB:.0f} MiB, peak +{peak_grew / MIB:.0f} MiB")
    assert seconds < 20
    assert grew < RSS_BOUND and peak_grew < RSS_BOUND


def test_too_deep_tool_call_arguments_are_a_400_naming_the_field(service):
    # A string in the body, so only the arguments' own parse recurses; 16,000 bytes, below the prompt limit.
    deep = "[" * 8000 + "]" * 8000
    messages = [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": deep}}]}]
    reply = httpx.post(f"{service.http_url}/chat/completions", json={"messages": messages, "max_tokens": 1}, timeout=60)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == "messages[1].tool_calls[0].function.arguments"
    assert error["message"].startswith("messages[1].tool_calls[0].function.arguments: not valid JSON (nested too deeply to parse")


def test_deeply_nested_bodies_are_never_a_500(service):
    """A tool schema holding lists nested 850 to 1,000 deep: parsed or not, rendered or not, the
    answer is 200 or 400 (the body's parser and the chat template's `tojson` give up at
    different depths, both below Python's recursion limit of 1,000 frames)."""
    statuses = {}
    for depth in range(850, 1001, 25):
        schema = '{"type": "object", "default": ' + "[" * depth + "]" * depth + "}"
        body = ('{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, '
                '"tools": [{"type": "function", "function": {"name": "f", "parameters": ' + schema + "}}]}")
        reply = httpx.post(f"{service.http_url}/chat/completions", content=body, headers={"content-type": "application/json"}, timeout=60)
        statuses[depth] = reply.status_code
    assert set(statuses.values()) <= {200, 400}, statuses
    assert statuses[1000] == 400, statuses


def test_a_body_over_the_message_limit_is_413_before_it_is_parsed(service):
    """server.max_message_bytes (64 MiB here) bounds HTTP bodies as it bounds gRPC messages:
    a declared length over it is refused before a byte is read, an undeclared (chunked) one
    as soon as the count passes it; neither is parsed."""
    size = 64 * MIB + 1
    payload = b'{"prompt": "' + b"x" * (size - 14) + b'"}'
    assert len(payload) == size
    peak = service.rss("VmHWM")
    with httpx.Client(timeout=60) as http:
        declared = http.post(f"{service.http_url}/completions", content=payload, headers={"content-type": "application/json"})

        def chunks():
            for start in range(0, len(payload), MIB):
                yield payload[start:start + MIB]

        chunked = http.post(f"{service.http_url}/completions", content=chunks(), headers={"content-type": "application/json"})
    for reply in (declared, chunked):
        assert reply.status_code == 413, reply.text[:300]
        error = reply.json()["error"]
        assert error["code"] == "request_too_large" and f"the limit of {64 * MIB} bytes (server.max_message_bytes)" in error["message"]
    # Not parsed: the peak grew by far less than the JSON parse of 64 MiB would take (~3 copies).
    assert service.rss("VmHWM") - peak < 2 * 64 * MIB


def test_the_service_still_serves(stub):
    reply = stub.Generate(policy_pb2.GenerateRequest(
        prompts=[policy_pb2.Prompt(text="Hello")], sampling=policy_pb2.SamplingParams(max_tokens=2, ignore_eos=True)), timeout=60)
    assert len(reply.results[0].completions[0].token_ids) == 2

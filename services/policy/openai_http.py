"""OpenAI-compatible HTTP API of the policy service (same process and event loop as gRPC).

`/health`, `/v1/models`, `/v1/completions` and `/v1/chat/completions` (with
`stream: true` as server-sent events), so agents and tools written for the
OpenAI API can query the current policy. Requests go through the same
PolicyCore as gRPC: same validation, limits, admission control and weights
version (reported as `system_fingerprint: "policy-v<N>"` and `policy_version`).
Extensions in the manner of vLLM: `top_k`, `ignore_eos`, and `return_token_ids`
(adds `prompt_token_ids`/`token_ids` to each choice). Tools are rendered by the
model's chat template and its calls parsed back (`tool_calls.py`); every error
has OpenAI's body, `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from outrider.proto.chat import ROLES, Message
from outrider.serving import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted, ServiceError
from outrider.serving.errors import RETRY_AFTER_MS
from outrider.serving.auth import Authenticator
from outrider.services.policy import validation
from outrider.proto.v1.trajectory_pb2 import SamplingSupport
from outrider.services.policy import capture as sessions
from outrider.services.policy.backend import CompletionResult, SamplingSpec, TopLogprobs
from outrider.services.policy.capture import CapturedSessions, SessionCall, SessionGone
from outrider.services.policy.core import PolicyCore
from outrider.services.policy.openai_schema import ChatRequest, CompletionRequest
from outrider.services.policy.prompts import utf8_size
from outrider.services.policy.tool_calls import (
    FORMATS,
    ParsedCall,
    StreamingToolFilter,
    ToolFormat,
    detect_format,
    supports_tools,
)

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
}
# Service errors start with the field at fault ("messages[0].role: ..."): OpenAI's `param`.
_PARAM = re.compile(r"^([A-Za-z_][\w.\[\]]*): ")


def _error(status: int, message: str, code: str, param: str | None = None) -> JSONResponse:
    kind = {404: "not_found_error", 429: "rate_limit_error"}.get(status, "invalid_request_error" if status < 500 else "server_error")
    if param is None and (match := _PARAM.match(message)):
        param = match.group(1)
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


def _sse(payload: dict | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


def create_app(core: PolicyCore, authenticator: Authenticator | None = None) -> FastAPI:
    """The app; with an enabled `authenticator`, `/v1/*` needs a bearer token of the
    `client` role (the OpenAI clients' API key). `/health` stays open for probes, and
    `/sessions/<id>/*` is authorised by the session itself: its id is 128 random bits that
    only the env service (which opened the session in Redis) hands to one agent program."""
    app = FastAPI(title="Outrider policy (OpenAI-compatible)", docs_url=None, redoc_url=None)

    if authenticator is not None and authenticator.enabled:
        @app.middleware("http")
        async def _authenticate(request: Request, call_next):
            if request.url.path.startswith("/v1"):
                try:
                    # Every role includes `client`, all that /v1/* needs: authenticating is authorising.
                    authenticator.authenticate(request.headers.get("authorization"), [], "http")
                except ServiceError as exc:
                    response = _error(401 if exc.code == grpc.StatusCode.UNAUTHENTICATED else 403, exc.message,
                                      "invalid_api_key" if exc.code == grpc.StatusCode.UNAUTHENTICATED else "permission_denied")
                    response.headers["WWW-Authenticate"] = "Bearer"
                    return response
            return await call_next(request)
    renderer = core.renderer
    started = int(time.time())
    # Token texts for logprobs, decoded once per token id (at most the vocabulary): top_logprobs
    # asks for up to 20 per position.
    piece = functools.lru_cache(maxsize=None)(lambda token: renderer.detokenize([token], skip_special_tokens=False))

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        status = 409 if isinstance(exc, SessionGone) else HTTP_STATUS.get(exc.code, 500)
        response = _error(status, exc.message, exc.code.name)
        if isinstance(exc, ResourceExhausted) and exc.retry_after_ms is not None:
            response.headers["Retry-After"] = str(math.ceil(exc.retry_after_ms / 1000))  # whole seconds (RFC 9110)
            response.headers[RETRY_AFTER_MS] = str(exc.retry_after_ms)
        return response

    @app.exception_handler(RequestValidationError)
    async def _bad_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        fields = [".".join(str(p) for p in e["loc"][1:]) or "body" for e in errors]
        problems = "; ".join(f"{field}: {e['msg']}" for field, e in zip(fields, errors))
        return _error(400, problems, "INVALID_ARGUMENT", fields[0] if fields else None)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", str(exc.status_code))

    @app.exception_handler(RecursionError)
    async def _too_deep(request: Request, exc: RecursionError) -> JSONResponse:
        # Only a request's nesting (JSON in a body, a tool schema, tool-call arguments) goes this
        # deep: the sender's bad input, like gRPC's (outrider.serving.server._fail).
        return _error(400, f"{request.url.path}: the request is nested too deeply to process ({exc})", "INVALID_ARGUMENT")

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, f"internal error: {type(exc).__name__}: {exc}", "INTERNAL")

    @app.get("/health")
    async def health() -> JSONResponse:
        """200 while serving; 503 with an OpenAI error body once the backend is dead or the
        weights are half loaded (the gRPC health service says NOT_SERVING for the first)."""
        if core.unavailable_reason is not None:
            return _error(503, core.unavailable_reason, "UNAVAILABLE")
        return JSONResponse({"status": "ok", "model": core.model_name, "backend": core.backend.name,
                             "policy_version": core.version, "in_flight": core.in_flight})

    def model_card() -> dict:
        info = core.backend.info
        return {"id": core.model_name, "object": "model", "created": started, "owned_by": "outrider",
                "root": core.model_name, "max_model_len": core.max_context, "policy_version": core.version,
                "backend": core.backend.name, "dtype": info.dtype,
                "tool_call_format": _tool_format_name(renderer)}

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str) -> dict:
        validation.check_model(model_id, core.model_name)
        return model_card()

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest):
        validation.check_model(body.model, core.model_name)
        body.check()
        prompts = _completion_prompts(renderer, body.prompt)
        for i, ids in enumerate(prompts):
            renderer.check_ids(ids, f"prompt[{i}]")
        spec = _spec(body.sampling(body.max_tokens), core, body.logprobs or 0)
        want_logprobs = body.logprobs is not None
        meta = _meta("cmpl", core.model_name)
        if body.stream:
            def chunk(delta, version):
                return {**meta, "object": "text_completion", "system_fingerprint": f"policy-v{version}", "choices": [{
                    "index": delta.prompt_index * spec.n + delta.completion_index, "text": delta.text_delta,
                    "finish_reason": delta.finish_reason,
                    "logprobs": _text_logprobs(piece, delta.token_ids, delta.logprobs, delta.top_logprobs, spec)
                    if want_logprobs else None,
                    **({"token_ids": delta.token_ids} if body.return_token_ids else {})}]}
            return await _stream(core, prompts, spec, lambda delta, version: [chunk(delta, version)],
                                 {**meta, "object": "text_completion"} if body.include_usage else None)
        results, version = await core.generate(prompts, spec)
        choices = []
        for p, completions_ in enumerate(results):
            for j, c in enumerate(completions_):
                choice = {"index": p * spec.n + j, "text": c.text, "finish_reason": c.finish_reason,
                          "logprobs": _text_logprobs(piece, c.token_ids, c.logprobs, c.top_logprobs, spec)
                          if want_logprobs else None}
                if body.return_token_ids:
                    choice.update(prompt_token_ids=prompts[p], token_ids=c.token_ids)
                choices.append(choice)
        return {**meta, "object": "text_completion", "system_fingerprint": f"policy-v{version}",
                "policy_version": version, "choices": choices, "usage": _usage(prompts, results)}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest):
        return await _chat(body, None)

    @app.post("/sessions/{session_id}/v1/chat/completions")
    async def session_chat(session_id: str, body: ChatRequest):
        """The same call in a captured session (`capture.py`): spliced prompt, recorded."""
        sessions.check_request(body.n)
        return await _chat(body, session_id)

    @app.get("/sessions/{session_id}/v1/models")
    async def session_models(session_id: str) -> dict:
        await _sessions().check_open(session_id)
        return {"object": "list", "data": [model_card()]}

    def _sessions() -> CapturedSessions:
        if core.sessions is None:
            raise NotFound("captured sessions are off on this server: set policy.capture.redis_url "
                           "(`outrider up` and `train` set it to the run's Redis)")
        return core.sessions

    async def _chat(body: ChatRequest, session_id: str | None):
        validation.check_model(body.model, core.model_name)
        body.check()
        max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
        spec = _spec(body.sampling(max_tokens), core, body.top_logprobs or 0)
        if session_id is None:
            ids, tool_format = _render_chat(renderer, body)
            captured = None
        else:
            captured, tool_format = await _session_prompt(_sessions(), session_id, renderer, body)
            ids = captured.prompt_ids
        meta = _meta("chatcmpl", core.model_name)

        def logprobs(token_ids, lps, tops):
            return _chat_logprobs(piece, token_ids, lps, tops, spec) if body.logprobs else None

        async def record(token_ids, lps, version, finish_reason, message, streamed) -> None:
            if captured is not None:
                await core.sessions.record(
                    captured, token_ids=token_ids, logprobs=lps, version=version, finish_reason=finish_reason,
                    content=message.get("content") or "", tool_call_ids=[c["id"] for c in message.get("tool_calls", ())],
                    sampling=_support(spec), streamed=streamed,
                )

        if body.stream:
            filters = {}
            sampled: dict[int, tuple[list[int], list[float]]] = {}
            said: dict[int, str] = {}  # content sent so far, as the agent puts it together

            async def chunks(delta, version) -> list[dict]:
                base = {**meta, "object": "chat.completion.chunk", "system_fingerprint": f"policy-v{version}"}
                extra = {"token_ids": delta.token_ids} if body.return_token_ids else {}
                lps = logprobs(delta.token_ids, delta.logprobs, delta.top_logprobs)
                so_far = sampled.setdefault(delta.completion_index, ([], []))
                so_far[0].extend(delta.token_ids)
                so_far[1].extend(delta.logprobs)
                if tool_format is None:
                    said[delta.completion_index] = said.get(delta.completion_index, "") + delta.text_delta
                    if delta.finish_reason is not None:
                        await record(*so_far, version, delta.finish_reason, {"content": said[delta.completion_index]}, True)
                    return [{**base, "choices": [{
                        "index": delta.completion_index, "delta": {"role": "assistant", "content": delta.text_delta},
                        "finish_reason": delta.finish_reason, "logprobs": lps, **extra}]}]
                held = filters.setdefault(delta.completion_index, StreamingToolFilter(tool_format))
                content = held.feed(delta.text_delta)
                said[delta.completion_index] = said.get(delta.completion_index, "") + content
                if delta.finish_reason is None:
                    return [{**base, "choices": [{"index": delta.completion_index,
                                                  "delta": {"role": "assistant", "content": content},
                                                  "finish_reason": None, "logprobs": lps, **extra}]}]
                rest, calls = held.finish()
                message = {"role": "assistant", "content": content + rest}
                if calls:
                    message["tool_calls"] = [{"index": k, **_tool_call(call)} for k, call in enumerate(calls)]
                await record(*so_far, version, delta.finish_reason, {
                    "content": said[delta.completion_index] + rest, "tool_calls": message.get("tool_calls", ())}, True)
                return [{**base, "choices": [{"index": delta.completion_index, "delta": message,
                                              "finish_reason": _finish(delta.finish_reason, calls),
                                              "logprobs": lps, **extra}]}]

            return await _stream(core, [ids], spec, chunks,
                                 {**meta, "object": "chat.completion.chunk"} if body.include_usage else None)
        results, version = await core.generate([ids], spec)
        choices = []
        for j, c in enumerate(results[0]):
            message: dict = {"role": "assistant", "content": c.text}
            calls: tuple[ParsedCall, ...] = ()
            if tool_format is not None:
                reply = tool_format.parse(c.text)
                calls = reply.calls
                if calls:
                    message = {"role": "assistant", "content": reply.content,
                               "tool_calls": [_tool_call(call) for call in calls]}
            await record(c.token_ids, c.logprobs, version, c.finish_reason, message, False)
            choice = {"index": j, "message": message, "finish_reason": _finish(c.finish_reason, calls),
                      "logprobs": logprobs(c.token_ids, c.logprobs, c.top_logprobs)}
            if body.return_token_ids:
                choice.update(prompt_token_ids=ids, token_ids=c.token_ids)
            choices.append(choice)
        return {**meta, "object": "chat.completion", "system_fingerprint": f"policy-v{version}",
                "policy_version": version, "choices": choices, "usage": _usage([ids], results)}

    return app


def _spec(given: validation.SamplingInput, core: PolicyCore, top_logprobs: int) -> SamplingSpec:
    spec = validation.sampling_spec(given, core.limits, core.renderer.vocab_size, "")
    return dataclasses.replace(spec, top_logprobs=top_logprobs)


def _completion_prompts(renderer, prompt: str | list) -> list[list[int]]:
    """OpenAI's four prompt forms: a string, strings, token ids, lists of token ids."""
    if isinstance(prompt, str):
        return [renderer.tokenize(prompt, add_special_tokens=True, where="prompt")]
    if not prompt:
        raise InvalidArgument("prompt: empty list")
    if all(isinstance(p, int) for p in prompt):
        return [list(prompt)]
    if all(isinstance(p, str) for p in prompt):
        return [renderer.tokenize(p, add_special_tokens=True, where=f"prompt[{i}]") for i, p in enumerate(prompt)]
    return [list(p) for p in prompt]


def _tool_format_name(renderer) -> str | None:
    """The tool-call format the served model's chat template teaches (None: no tool support)."""
    tokenizer = renderer.tokenizer
    if not tokenizer.chat_template:
        return None
    template = tokenizer.get_chat_template(tools=[{}])
    tool_format = detect_format(template) if supports_tools(template) else None
    return tool_format.name if tool_format else None


def _render_chat(renderer, body: ChatRequest) -> tuple[list[int], ToolFormat | None]:
    """Prompt ids of a chat request, and the tool-call format to parse its reply with (None:
    no tools). Plain conversations take the renderer's path, as gRPC's do; tools and tool
    messages are handed to the chat template as HF templates expect them."""
    renderer.check_bytes(_messages_bytes(body), "messages")  # before rendering or tokenizing any of it
    tool_history = any(m.tool_calls or m.tool_call_id is not None for m in body.messages)
    if not body.uses_tools and not tool_history:
        conversation = [Message(m.role, m.text(f"messages[{i}]"), m.name or "") for i, m in enumerate(body.messages)]
        return renderer.render_chat(conversation, add_generation_prompt=True, where="")[0], None
    tokenizer = renderer.tokenizer
    if not tokenizer.chat_template:
        raise FailedPrecondition("the served model has no chat template; send token_ids or text prompts")
    if not body.messages:
        raise InvalidArgument("messages: empty conversation")
    tools = [tool.model_dump(exclude_none=True) for tool in body.tools or ()] if body.uses_tools else None
    template = tokenizer.get_chat_template(tools=tools)
    tool_format = None
    if tools:
        if not supports_tools(template):
            raise InvalidArgument("tools: the served model's chat template does not render tools")
        tool_format = detect_format(template)
        if tool_format is None:
            raise InvalidArgument(
                f"tools: the served model's chat template renders tools in a format this server cannot parse "
                f"back into tool_calls (known formats: {', '.join(FORMATS)})"
            )
    entries = []
    for i, message in enumerate(body.messages):
        if message.role not in ROLES:
            raise InvalidArgument(f"messages[{i}].role: {message.role!r} is not one of {', '.join(ROLES)}")
        if message.tool_calls and "tool_calls" not in template:
            raise InvalidArgument(f"messages[{i}].tool_calls: the served model's chat template does not render tool calls")
        entries.append(message.template_entry(f"messages[{i}]"))
    try:
        text = tokenizer.apply_chat_template(entries, tools=tools, tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # the template itself raised (jinja `raise_exception`): the input is at fault
        raise InvalidArgument(f"messages: the chat template rejected the conversation: {exc}") from None
    return renderer.tokenize(text, add_special_tokens=False, where="messages"), tool_format


def _messages_bytes(body: ChatRequest) -> int:
    """UTF-8 bytes of what the messages put into the prompt: texts, names, tool calls."""
    size = 0
    for i, m in enumerate(body.messages):
        size += utf8_size(m.text(f"messages[{i}]")) + utf8_size(m.name or "") + utf8_size(m.tool_call_id or "")
        size += sum(utf8_size(call.function.name) + utf8_size(call.function.arguments) for call in m.tool_calls or ())
    return size


async def _session_prompt(captured: CapturedSessions, session_id: str, renderer,
                          body: ChatRequest) -> tuple[SessionCall, ToolFormat | None]:
    """The call's prompt in a captured session (`capture.py`): the plain rendering checks the
    messages and gives the tool format; the previous call's tokens replace it where the
    history extends that call."""
    ids, tool_format = _render_chat(renderer, body)
    entries = [m.template_entry(f"messages[{i}]") for i, m in enumerate(body.messages)]
    tools = [tool.model_dump(exclude_none=True) for tool in body.tools or ()] if body.uses_tools else None
    return await captured.prompt(session_id, entries, tools, ids), tool_format


def _support(spec: SamplingSpec) -> SamplingSupport | None:
    """The truncation a completion was sampled with (None: the full vocabulary)."""
    if spec.temperature > 0 and (spec.top_k > 0 or spec.top_p < 1):
        return SamplingSupport(temperature=spec.temperature, top_k=spec.top_k, top_p=spec.top_p)
    return None


def _tool_call(call: ParsedCall) -> dict:
    return {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": call.name, "arguments": call.arguments}}


def _finish(reason: str | None, calls: tuple[ParsedCall, ...]) -> str | None:
    """"tool_calls" when the model stopped after writing calls; a cut-off ("length") stays visible."""
    return "tool_calls" if calls and reason == "stop" else reason


async def _stream(core: PolicyCore, prompts: list[list[int]], spec, chunks: Callable[..., list[dict]],
                  usage_chunk: dict | None) -> StreamingResponse:
    deltas = core.generate_stream(prompts, spec)
    try:
        first = await deltas.__anext__()  # errors (overload, bad prompt) still get a proper status
    except BaseException:
        await deltas.aclose()
        raise

    async def body() -> AsyncIterator[str]:
        completion_tokens = 0
        try:
            delta, version = first
            while True:
                completion_tokens += len(delta.token_ids)
                payloads = chunks(delta, version)
                for payload in await payloads if inspect.isawaitable(payloads) else payloads:
                    yield _sse(payload)
                try:
                    delta, version = await deltas.__anext__()
                except StopAsyncIteration:
                    break
            if usage_chunk is not None:
                prompt_tokens = sum(len(p) for p in prompts)
                yield _sse({**usage_chunk, "system_fingerprint": f"policy-v{version}", "choices": [], "usage": {
                    "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens}})
            yield _sse("[DONE]")
        finally:
            await deltas.aclose()

    return StreamingResponse(body(), media_type="text/event-stream")


def _meta(prefix: str, model: str) -> dict:
    return {"id": f"{prefix}-{uuid.uuid4().hex}", "created": int(time.time()), "model": model}


def _usage(prompts: list[list[int]], results: list[list[CompletionResult]]) -> dict:
    prompt_tokens = sum(len(p) for p in prompts)
    completion_tokens = sum(len(c.token_ids) for completions in results for c in completions)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def _text_logprobs(piece: Callable[[int], str], token_ids: list[int], logprobs: list[float], tops: list[TopLogprobs],
                   spec: SamplingSpec) -> dict:
    pieces = [piece(t) for t in token_ids]
    offsets, offset = [], 0
    for text in pieces:
        offsets.append(offset)
        offset += len(text)
    top = [_by_text(piece, entry) for entry in tops] if spec.top_logprobs else None
    return {"tokens": pieces, "token_logprobs": logprobs, "top_logprobs": top, "text_offset": offsets}


def _by_text(piece: Callable[[int], str], entry: TopLogprobs) -> dict[str, float]:
    """OpenAI's completions format keys alternatives by their text: of tokens that decode
    alike, the most likely one stays."""
    out: dict[str, float] = {}
    for token, logprob in entry:
        out.setdefault(piece(token), logprob)
    return out


def _chat_logprobs(piece: Callable[[int], str], token_ids: list[int], logprobs: list[float], tops: list[TopLogprobs],
                   spec: SamplingSpec) -> dict:
    def item(token: int, logprob: float) -> dict:
        text = piece(token)
        return {"token": text, "logprob": logprob, "bytes": list(text.encode())}

    tops = tops if spec.top_logprobs else [[] for _ in token_ids]
    return {"content": [
        {**item(t, lp), "top_logprobs": [item(a, alp) for a, alp in top]}
        for t, lp, top in zip(token_ids, logprobs, tops)
    ]}

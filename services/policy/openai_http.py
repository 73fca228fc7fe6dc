"""OpenAI-compatible HTTP API of the policy service (same process and event loop as gRPC).

`/v1/models`, `/v1/completions` and `/v1/chat/completions` (with `stream: true`
as server-sent events), so agents and tools written for the OpenAI API can
query the current policy. Requests go through the same PolicyCore as gRPC:
same validation, limits, admission control and weights version (reported as
`system_fingerprint: "policy-v<N>"` and `policy_version`). Extensions in the
manner of vLLM: `top_k`, `ignore_eos`, and `return_token_ids` (adds
`prompt_token_ids`/`token_ids` to each choice).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from outrider.serving import InvalidArgument, ServiceError
from outrider.services.policy import validation
from outrider.services.policy.backend import CompletionResult
from outrider.services.policy.core import PolicyCore
from outrider.services.policy.prompts import Message

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
}


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = ""
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    ignore_eos: bool = False
    return_token_ids: bool = False
    echo: bool = False
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0

    def sampling(self, max_tokens: int | None) -> validation.SamplingInput:
        if self.echo:
            raise InvalidArgument("echo: not supported by this server")
        if self.frequency_penalty or self.presence_penalty:
            raise InvalidArgument("frequency_penalty/presence_penalty: not supported (they would change the policy's distribution)")
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return validation.SamplingInput(
            n=self.n, temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, max_tokens=max_tokens,
            stop=stop, seed=self.seed, ignore_eos=self.ignore_eos,
        )


class CompletionRequest(_Request):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = 16
    logprobs: int | None = Field(None, ge=0, le=0)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: str | list[dict] | None = None
    name: str | None = None

    def text(self, where: str) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        parts = []
        for i, part in enumerate(self.content):
            if part.get("type") != "text":
                raise InvalidArgument(f"{where}.content[{i}]: only text parts are supported, got {part.get('type')!r}")
            parts.append(str(part.get("text", "")))
        return "".join(parts)


class ChatRequest(_Request):
    messages: list[ChatMessage]
    max_completion_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=0)


def _error(status: int, message: str, code: str) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "code": code}}, status_code=status)


def _sse(payload: dict | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


def create_app(core: PolicyCore) -> FastAPI:
    app = FastAPI(title="Outrider policy (OpenAI-compatible)", docs_url=None, redoc_url=None)
    renderer = core.renderer

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return _error(HTTP_STATUS.get(exc.code, 500), exc.message, exc.code.name)

    @app.exception_handler(RequestValidationError)
    async def _bad_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors())
        return _error(400, problems, "INVALID_ARGUMENT")

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{
            "id": core.model_name, "object": "model", "created": 0, "owned_by": "outrider",
            "max_model_len": core.max_context, "policy_version": core.version,
        }]}

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest):
        validation.check_model(body.model, core.model_name)
        prompts = _completion_prompts(renderer, body.prompt)
        for i, ids in enumerate(prompts):
            renderer.check_ids(ids, f"prompt[{i}]")
        spec = validation.sampling_spec(body.sampling(body.max_tokens), core.limits, renderer.vocab_size, "")
        want_logprobs = body.logprobs is not None
        meta = _meta("cmpl", core.model_name)
        if body.stream:
            return await _stream(core, prompts, spec, lambda delta, version: {
                **meta, "object": "text_completion", "system_fingerprint": f"policy-v{version}",
                "choices": [{"index": delta.prompt_index * spec.n + delta.completion_index, "text": delta.text_delta,
                             "finish_reason": delta.finish_reason,
                             "logprobs": _text_logprobs(renderer, delta.token_ids, delta.logprobs) if want_logprobs else None,
                             **({"token_ids": delta.token_ids} if body.return_token_ids else {})}],
            })
        results, version = await core.generate(prompts, spec)
        choices = []
        for p, completions_ in enumerate(results):
            for j, c in enumerate(completions_):
                choice = {"index": p * spec.n + j, "text": c.text, "finish_reason": c.finish_reason,
                          "logprobs": _text_logprobs(renderer, c.token_ids, c.logprobs) if want_logprobs else None}
                if body.return_token_ids:
                    choice.update(prompt_token_ids=prompts[p], token_ids=c.token_ids)
                choices.append(choice)
        return {**meta, "object": "text_completion", "system_fingerprint": f"policy-v{version}",
                "policy_version": version, "choices": choices, "usage": _usage(prompts, results)}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest):
        validation.check_model(body.model, core.model_name)
        conversation = [Message(m.role, m.text(f"messages[{i}]"), m.name or "") for i, m in enumerate(body.messages)]
        ids, _ = renderer.render_chat(conversation, add_generation_prompt=True, where="")
        max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
        spec = validation.sampling_spec(body.sampling(max_tokens), core.limits, renderer.vocab_size, "")
        meta = _meta("chatcmpl", core.model_name)
        if body.stream:
            return await _stream(core, [ids], spec, lambda delta, version: {
                **meta, "object": "chat.completion.chunk", "system_fingerprint": f"policy-v{version}",
                "choices": [{"index": delta.completion_index, "delta": {"role": "assistant", "content": delta.text_delta},
                             "finish_reason": delta.finish_reason,
                             "logprobs": _chat_logprobs(renderer, delta.token_ids, delta.logprobs) if body.logprobs else None,
                             **({"token_ids": delta.token_ids} if body.return_token_ids else {})}],
            })
        results, version = await core.generate([ids], spec)
        choices = []
        for j, c in enumerate(results[0]):
            choice = {"index": j, "message": {"role": "assistant", "content": c.text}, "finish_reason": c.finish_reason,
                      "logprobs": _chat_logprobs(renderer, c.token_ids, c.logprobs) if body.logprobs else None}
            if body.return_token_ids:
                choice.update(prompt_token_ids=ids, token_ids=c.token_ids)
            choices.append(choice)
        return {**meta, "object": "chat.completion", "system_fingerprint": f"policy-v{version}",
                "policy_version": version, "choices": choices, "usage": _usage([ids], results)}

    return app


def _completion_prompts(renderer, prompt: str | list) -> list[list[int]]:
    """OpenAI's four prompt forms: a string, strings, token ids, lists of token ids."""
    if isinstance(prompt, str):
        return [renderer.tokenize(prompt, add_special_tokens=True)]
    if not prompt:
        raise InvalidArgument("prompt: empty list")
    if all(isinstance(p, int) for p in prompt):
        return [list(prompt)]
    if all(isinstance(p, str) for p in prompt):
        return [renderer.tokenize(p, add_special_tokens=True) for p in prompt]
    return [list(p) for p in prompt]


async def _stream(core: PolicyCore, prompts: list[list[int]], spec, chunk) -> StreamingResponse:
    deltas = core.generate_stream(prompts, spec)
    try:
        first = await deltas.__anext__()  # errors (overload, bad prompt) still get a proper status
    except BaseException:
        await deltas.aclose()
        raise

    async def body() -> AsyncIterator[str]:
        try:
            yield _sse(chunk(*first))
            async for delta, version in deltas:
                yield _sse(chunk(delta, version))
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


def _pieces(renderer, token_ids: list[int]) -> list[str]:
    return [renderer.detokenize([t], skip_special_tokens=False) for t in token_ids]


def _text_logprobs(renderer, token_ids: list[int], logprobs: list[float]) -> dict:
    pieces = _pieces(renderer, token_ids)
    offsets, offset = [], 0
    for piece in pieces:
        offsets.append(offset)
        offset += len(piece)
    return {"tokens": pieces, "token_logprobs": logprobs, "top_logprobs": None, "text_offset": offsets}


def _chat_logprobs(renderer, token_ids: list[int], logprobs: list[float]) -> dict:
    return {"content": [
        {"token": piece, "logprob": lp, "bytes": list(piece.encode()), "top_logprobs": []}
        for piece, lp in zip(_pieces(renderer, token_ids), logprobs)
    ]}


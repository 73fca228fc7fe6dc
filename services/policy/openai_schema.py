"""Request bodies of the OpenAI-compatible API, and the fields it refuses.

Unknown fields are ignored, as OpenAI's own server ignores what it does not
know; but fields that would change what is sampled (`logit_bias`,
`response_format` other than text, forced `tool_choice`, ...) are named here
and refused with a 400 when set, never silently dropped.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from outrider.proto import jsontext
from outrider.serving import InvalidArgument
from outrider.services.policy import validation

MAX_TOP_LOGPROBS = 20
"""OpenAI's (and vLLM's default) cap on `top_logprobs` / completions `logprobs`."""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False
    """A last chunk with `usage` and no choices, as OpenAI sends."""


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
    stream_options: StreamOptions | None = None
    ignore_eos: bool = False
    return_token_ids: bool = False
    echo: bool = False
    frequency_penalty: float | None = 0.0
    presence_penalty: float | None = 0.0
    logit_bias: dict[str, float] | None = None
    best_of: int | None = None

    def sampling(self, max_tokens: int | None) -> validation.SamplingInput:
        if self.echo:
            raise InvalidArgument("echo: not supported by this server")
        if self.frequency_penalty or self.presence_penalty:
            field = "frequency_penalty" if self.frequency_penalty else "presence_penalty"
            raise InvalidArgument(f"{field}: not supported (it would change the policy's distribution)")
        if self.logit_bias:
            raise InvalidArgument("logit_bias: not supported (it would change the policy's distribution)")
        if self.best_of not in (None, 1):
            raise InvalidArgument("best_of: only 1 is supported; use n for several completions")
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return validation.SamplingInput(
            n=self.n, temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, max_tokens=max_tokens,
            stop=stop, seed=self.seed, ignore_eos=self.ignore_eos,
        )

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class CompletionRequest(_Request):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = 16
    logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    """Per token: the sampled token's log-prob, and this many most likely alternatives."""
    suffix: str | None = None

    def check(self) -> None:
        if self.suffix:
            raise InvalidArgument("suffix: not supported (insertion needs a fill-in-the-middle model)")


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    arguments: str = "{}"
    """JSON text of an object, as OpenAI sends it."""


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = ""
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: str | list[dict] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    """Calls an earlier assistant turn made (rendered by tool-capable chat templates)."""
    tool_call_id: str | None = None
    """On a `tool` message: the call it answers."""

    def text(self, where: str) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        parts = []
        for i, part in enumerate(self.content):
            if part.get("type") != "text":
                raise InvalidArgument(f"{where}.content[{i}]: only text parts are supported, got {part.get('type')!r}")
            parts.append(str(part.get("text", "")))
        return "".join(parts)

    def template_entry(self, where: str) -> dict[str, Any]:
        """The message as HF chat templates read it: tool-call arguments as objects, not JSON text."""
        entry: dict[str, Any] = {"role": self.role, "content": self.text(where)}
        if self.name:
            entry["name"] = self.name
        if self.tool_call_id is not None:
            entry["tool_call_id"] = self.tool_call_id
        if self.tool_calls:
            calls = []
            for j, call in enumerate(self.tool_calls):
                try:
                    arguments = jsontext.loads(call.function.arguments)
                except json.JSONDecodeError as exc:
                    raise InvalidArgument(f"{where}.tool_calls[{j}].function.arguments: not valid JSON ({exc})") from None
                if not isinstance(arguments, dict):
                    raise InvalidArgument(f"{where}.tool_calls[{j}].function.arguments: not a JSON object")
                calls.append({"id": call.id, "type": "function",
                              "function": {"name": call.function.name, "arguments": arguments}})
            entry["tool_calls"] = calls
        return entry


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function"] = "function"
    function: FunctionDefinition


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str


class ChatRequest(_Request):
    messages: list[ChatMessage]
    max_completion_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None

    def check(self) -> None:
        if self.top_logprobs and not self.logprobs:
            raise InvalidArgument("top_logprobs: requires logprobs: true")
        if self.functions or self.function_call is not None:
            field = "functions" if self.functions else "function_call"
            raise InvalidArgument(f"{field}: the legacy function-calling fields are not supported; use tools")
        if self.response_format is not None and self.response_format.type != "text":
            raise InvalidArgument(
                f"response_format: {self.response_format.type!r} is not supported (only 'text'): constrained "
                "decoding would sample from a distribution other than the policy's, which the logprobs describe"
            )
        if self.tool_choice not in (None, "auto", "none"):
            raise InvalidArgument(
                f"tool_choice: {self.tool_choice!r} is not supported; use 'auto' or 'none' (forcing a call needs "
                "constrained decoding, which would change the policy's distribution)"
            )
        if self.parallel_tool_calls is False:
            raise InvalidArgument("parallel_tool_calls: false is not supported (the model's calls are returned as written)")

    @property
    def uses_tools(self) -> bool:
        return bool(self.tools) and self.tool_choice != "none"

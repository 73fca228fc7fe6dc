"""gRPC PolicyService: converts messages, delegates to PolicyCore."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from outrider.proto.v1 import common_pb2, policy_pb2, policy_pb2_grpc
from outrider.serving import InvalidArgument
from outrider.services.policy import validation
from outrider.services.policy.backend import CompletionResult, SamplingSpec, WeightsUpdate
from outrider.services.policy.core import PolicyCore
from outrider.proto.chat import Message
from outrider.models.staging import check_staged_file
from outrider.services.policy.weights import TensorAssembler, check_checkpoint_folder, checkpoint_shapes, file_shapes

FINISH = {
    "stop": common_pb2.FINISH_REASON_STOP,
    "length": common_pb2.FINISH_REASON_LENGTH,
    "abort": common_pb2.FINISH_REASON_ABORT,
}


def sampling_input(params: policy_pb2.SamplingParams) -> validation.SamplingInput:
    def optional(name: str):
        return getattr(params, name) if params.HasField(name) else None

    return validation.SamplingInput(
        n=params.n, temperature=optional("temperature"), top_p=optional("top_p"), top_k=optional("top_k"),
        max_tokens=optional("max_tokens"), stop=tuple(params.stop), stop_token_ids=tuple(params.stop_token_ids),
        seed=optional("seed"), ignore_eos=params.ignore_eos,
    )


def messages(conversation: common_pb2.Conversation) -> list[Message]:
    return [Message.from_proto(m) for m in conversation.messages]


class PolicyServicer(policy_pb2_grpc.PolicyServiceServicer):
    def __init__(self, core: PolicyCore):
        self.core = core

    def _render(self, prompt: policy_pb2.Prompt, where: str) -> list[int]:
        renderer = self.core.renderer
        kind = prompt.WhichOneof("input")
        if kind == "token_ids":
            ids = list(prompt.token_ids.ids)
            renderer.check_ids(ids, f"{where}.token_ids")
            return ids
        if kind == "conversation":
            conversation = prompt.conversation
            return renderer.render_chat(messages(conversation), conversation.add_generation_prompt, f"{where}.conversation")[0]
        if kind == "text":
            return renderer.tokenize(prompt.text, add_special_tokens=True, where=f"{where}.text")
        raise InvalidArgument(f"{where}: no input set (token_ids, conversation or text)")

    def _prepare(self, request: policy_pb2.GenerateRequest) -> tuple[list[list[int]], SamplingSpec]:
        validation.check_model(request.model, self.core.model_name)
        validation.check_prompt_count(len(request.prompts), self.core.limits)
        spec = validation.sampling_spec(sampling_input(request.sampling), self.core.limits, self.core.renderer.vocab_size)
        return [self._render(p, f"prompts[{i}]") for i, p in enumerate(request.prompts)], spec

    async def Generate(self, request, context) -> policy_pb2.GenerateResponse:
        prompts, spec = self._prepare(request)
        results, version = await self.core.generate(prompts, spec, _pinned(request))
        return policy_pb2.GenerateResponse(
            results=[
                policy_pb2.PromptResult(prompt_ids=ids, completions=[_completion(c) for c in completions])
                for ids, completions in zip(prompts, results)
            ],
            policy_version=version,
            model=self.core.model_name,
        )

    async def GenerateStream(self, request, context) -> AsyncIterator[policy_pb2.GenerateChunk]:
        prompts, spec = self._prepare(request)
        started: set[int] = set()
        stream = self.core.generate_stream(prompts, spec, _pinned(request))
        try:
            async for delta, version in stream:
                first = delta.prompt_index not in started
                started.add(delta.prompt_index)
                yield policy_pb2.GenerateChunk(
                    prompt_index=delta.prompt_index,
                    completion_index=delta.completion_index,
                    prompt_ids=prompts[delta.prompt_index] if first else [],
                    token_ids=delta.token_ids,
                    logprobs=delta.logprobs,
                    text_delta=delta.text_delta,
                    finish_reason=FINISH[delta.finish_reason] if delta.finish_reason else common_pb2.FINISH_REASON_UNSPECIFIED,
                    stop_string=delta.stop_string,
                    policy_version=version,
                )
        finally:
            # A client that goes away must release its admission slot and its hold on the
            # weights version now, not whenever the abandoned generator is collected.
            await stream.aclose()

    async def Tokenize(self, request, context) -> policy_pb2.TokenizeResponse:
        validation.check_prompt_count(len(request.texts), self.core.limits, "texts")
        renderer = self.core.renderer
        return policy_pb2.TokenizeResponse(
            tokens=[common_pb2.TokenIds(ids=renderer.tokenize(t, request.add_special_tokens, f"texts[{i}]"))
                    for i, t in enumerate(request.texts)]
        )

    async def Detokenize(self, request, context) -> policy_pb2.DetokenizeResponse:
        validation.check_prompt_count(len(request.tokens), self.core.limits, "tokens")
        renderer = self.core.renderer
        texts = []
        for i, tokens in enumerate(request.tokens):
            renderer.check_ids(list(tokens.ids), f"tokens[{i}].ids")
            texts.append(renderer.detokenize(list(tokens.ids), request.skip_special_tokens))
        return policy_pb2.DetokenizeResponse(texts=texts)

    async def ApplyChatTemplate(self, request, context) -> policy_pb2.ApplyChatTemplateResponse:
        validation.check_prompt_count(len(request.conversations), self.core.limits, "conversations")
        rendered = [
            self.core.renderer.render_chat(messages(c), c.add_generation_prompt, f"conversations[{i}]")
            for i, c in enumerate(request.conversations)
        ]
        return policy_pb2.ApplyChatTemplateResponse(
            tokens=[common_pb2.TokenIds(ids=ids) for ids, _ in rendered], texts=[text for _, text in rendered]
        )

    async def ScoreTokens(self, request, context) -> policy_pb2.ScoreTokensResponse:
        sequences = [(list(s.token_ids), s.prompt_length) for s in request.sequences]
        scores, version = await self.core.score(sequences, entropies=request.return_entropies)
        return policy_pb2.ScoreTokensResponse(
            sequences=[policy_pb2.ScoredSequence(logprobs=logprobs, entropies=entropies) for logprobs, entropies in scores],
            policy_version=version,
        )

    async def UpdateWeights(self, request_iterator, context) -> policy_pb2.UpdateWeightsResponse:
        messages_in = request_iterator.__aiter__()
        try:
            first = await messages_in.__anext__()
        except StopAsyncIteration:
            raise InvalidArgument("UpdateWeights: the stream was empty; the first message must be a WeightsHeader") from None
        if first.WhichOneof("payload") != "header":
            raise InvalidArgument("UpdateWeights: the first message must be a WeightsHeader")
        header = first.header
        self.core.check_version(header.version)  # refuse a stale version before reading any tensor
        source = header.WhichOneof("source")
        schema = self.core.schema
        received = _Received()
        if source == "checkpoint_path":
            path = check_checkpoint_folder(header.checkpoint_path)
            schema.check(checkpoint_shapes(path), f"checkpoint {path}")
            update = WeightsUpdate(path=path)
        elif source == "staged_file":
            file = check_staged_file(header.staged_file)
            schema.check(file_shapes(file), f"staged file {file}")
            update = WeightsUpdate(file=file)
        elif source == "streamed_tensors":
            started = time.perf_counter()
            tensors = await _receive_tensors(messages_in, header.streamed_tensors, schema, received)
            received.seconds = time.perf_counter() - started
            update = WeightsUpdate(tensors=tensors)
        else:
            raise InvalidArgument("header: set checkpoint_path, staged_file or streamed_tensors")
        outcome = await self.core.update_weights(header.version, update)
        timings = outcome.timings
        return policy_pb2.UpdateWeightsResponse(
            version=outcome.version, previous_version=outcome.previous_version, load_seconds=outcome.load_seconds,
            receive_seconds=received.seconds, assemble_seconds=received.assemble_seconds,
            stage_seconds=timings.stage_seconds, reload_seconds=timings.reload_seconds,
            cache_reset_seconds=timings.cache_reset_seconds,
        )

    async def GetInfo(self, request, context) -> policy_pb2.PolicyInfo:
        info = self.core.backend.info
        limits = self.core.limits
        return policy_pb2.PolicyInfo(
            model=self.core.model_name, backend=self.core.backend.name, policy_version=self.core.version,
            max_context_length=info.max_context, vocab_size=info.vocab_size, eos_token_ids=info.eos_token_ids,
            max_prompts=limits.max_prompts, max_n=limits.max_n, max_tokens=limits.max_tokens,
            dtype=info.dtype, device=info.device, max_entropy_tokens=self.core.backend.entropy_token_limit or 0,
            resident_versions=self.core.resident_versions,
        )


def _pinned(request: policy_pb2.GenerateRequest) -> int | None:
    return request.policy_version if request.HasField("policy_version") else None


@dataclass
class _Received:
    """Time spent receiving a streamed update, and the part of it spent assembling."""

    seconds: float = 0.0
    assemble_seconds: float = 0.0


async def _receive_tensors(messages_in, count: int, schema, received: _Received) -> dict:
    # float32 is the widest dtype accepted: a complete update never exceeds this.
    limit = sum(4 * _numel(shape) for shape in schema.shapes.values()) * 2
    assembler = TensorAssembler(max_total_bytes=limit)
    index = 0
    async for message in messages_in:
        if message.WhichOneof("payload") != "chunk":
            raise InvalidArgument(f"message {index + 1}: only TensorChunk messages may follow the header")
        started = time.perf_counter()
        assembler.add(message.chunk, index)
        received.assemble_seconds += time.perf_counter() - started
        index += 1
    tensors = assembler.finish(count)
    for name in schema.check({name: tuple(t.shape) for name, t in tensors.items()}, "streamed tensors"):
        del tensors[name]
    return tensors


def _numel(shape: tuple[int, ...]) -> int:
    total = 1
    for d in shape:
        total *= d
    return total


def _completion(c: CompletionResult) -> policy_pb2.Completion:
    return policy_pb2.Completion(
        token_ids=c.token_ids, logprobs=c.logprobs, finish_reason=FINISH[c.finish_reason], stop_string=c.stop_string,
        text=c.text, support_logprobs=c.support_logprobs,
    )

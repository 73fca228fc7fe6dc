"""PolicyClient: a small synchronous client of the policy service for other components.

    with PolicyClient("127.0.0.1:50051") as policy:
        ids = policy.apply_chat_template([[{"role": "user", "content": "2+2?"}]]).tokens[0].ids
        reply = policy.generate([list(ids)], n=4, temperature=1.0, max_tokens=64)
        scores = policy.score_tokens([(list(ids) + list(c.token_ids), len(ids)) for c in reply.results[0].completions])
        policy.update_weights_from_state_dict(version=1, state_dict=model.state_dict())

Failures raise `grpc.RpcError` with the service's status code and message.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Union

from outrider.proto.chat import Message
from outrider.proto.v1 import common_pb2, policy_pb2, policy_pb2_grpc
from outrider.serving.credentials import ClientCredentials, open_channel

ChatMessages = Sequence[Union[Message, Mapping[str, str]]]
# A prompt: token ids (used verbatim), text (tokenized with special tokens), chat messages
# (rendered with the chat template, assistant header appended) or a ready Prompt message.
PromptLike = Union[Sequence[int], str, ChatMessages, policy_pb2.Prompt, common_pb2.Conversation]


def conversation(messages: ChatMessages | common_pb2.Conversation, add_generation_prompt: bool = True) -> common_pb2.Conversation:
    if isinstance(messages, common_pb2.Conversation):
        return messages
    return common_pb2.Conversation(messages=[_chat_message(m) for m in messages], add_generation_prompt=add_generation_prompt)


def _chat_message(message: Message | Mapping[str, str]) -> common_pb2.ChatMessage:
    if isinstance(message, Message):
        return message.to_proto()
    return Message(message["role"], message.get("content", ""), message.get("name", "")).to_proto()


def to_prompt(prompt: PromptLike) -> policy_pb2.Prompt:
    if isinstance(prompt, policy_pb2.Prompt):
        return prompt
    if isinstance(prompt, str):
        return policy_pb2.Prompt(text=prompt)
    if isinstance(prompt, common_pb2.Conversation):
        return policy_pb2.Prompt(conversation=prompt)
    items = list(prompt)
    if items and all(isinstance(item, (Message, Mapping)) for item in items):
        return policy_pb2.Prompt(conversation=conversation(items))
    return policy_pb2.Prompt(token_ids=common_pb2.TokenIds(ids=[int(t) for t in items]))


def sampling_params(
    *, n: int = 1, temperature: float | None = None, top_p: float | None = None, top_k: int | None = None,
    max_tokens: int | None = None, stop: Sequence[str] = (), stop_token_ids: Sequence[int] = (),
    seed: int | None = None, ignore_eos: bool = False,
) -> policy_pb2.SamplingParams:
    params = policy_pb2.SamplingParams(n=n, stop=list(stop), stop_token_ids=list(stop_token_ids), ignore_eos=ignore_eos)
    for name, value in (("temperature", temperature), ("top_p", top_p), ("top_k", top_k), ("max_tokens", max_tokens), ("seed", seed)):
        if value is not None:
            setattr(params, name, value)
    return params


class PolicyClient:
    """Sync gRPC client; one channel, safe to share between threads."""

    def __init__(self, address: str, *, timeout_s: float | None = 600.0, max_message_bytes: int = 64 * 1024 * 1024,
                 credentials: ClientCredentials | None = None):
        self.address = address
        self.timeout_s = timeout_s
        self.channel = open_channel(
            address,
            options=[("grpc.max_send_message_length", max_message_bytes), ("grpc.max_receive_message_length", max_message_bytes)],
            credentials=credentials,
        )
        self.stub = policy_pb2_grpc.PolicyServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def info(self) -> policy_pb2.PolicyInfo:
        return self.stub.GetInfo(policy_pb2.GetInfoRequest(), timeout=self.timeout_s)

    def _request(
        self, prompts: Sequence[PromptLike], model: str, sampling: dict, policy_version: int | None = None
    ) -> policy_pb2.GenerateRequest:
        return policy_pb2.GenerateRequest(
            prompts=[to_prompt(p) for p in prompts], sampling=sampling_params(**sampling), model=model,
            policy_version=policy_version,
        )

    def generate(
        self, prompts: Sequence[PromptLike], *, model: str = "", policy_version: int | None = None, **sampling
    ) -> policy_pb2.GenerateResponse:
        """`sampling`: n, temperature, top_p, top_k, max_tokens, stop, stop_token_ids, seed, ignore_eos.
        `policy_version`: generate with that resident weights version (None: the latest)."""
        return self.stub.Generate(self._request(prompts, model, sampling, policy_version), timeout=self.timeout_s)

    def generate_stream(
        self, prompts: Sequence[PromptLike], *, model: str = "", policy_version: int | None = None, **sampling
    ) -> Iterator[policy_pb2.GenerateChunk]:
        """Chunks as they are sampled; the returned call also has `.cancel()`."""
        return self.stub.GenerateStream(self._request(prompts, model, sampling, policy_version), timeout=self.timeout_s)

    def score_tokens(
        self, sequences: Sequence[tuple[Sequence[int], int]], entropies: bool = False
    ) -> policy_pb2.ScoreTokensResponse:
        """Teacher-forced logprobs of `ids[prompt_length:]` for each (ids, prompt_length); with
        `entropies`, also the entropy of the full next-token distribution at each of them."""
        request = policy_pb2.ScoreTokensRequest(
            sequences=[policy_pb2.ScoreSequence(token_ids=list(ids), prompt_length=start) for ids, start in sequences],
            return_entropies=entropies,
        )
        return self.stub.ScoreTokens(request, timeout=self.timeout_s)

    def apply_chat_template(
        self, conversations: Sequence[ChatMessages | common_pb2.Conversation], add_generation_prompt: bool = True
    ) -> policy_pb2.ApplyChatTemplateResponse:
        request = policy_pb2.ApplyChatTemplateRequest(
            conversations=[conversation(c, add_generation_prompt) for c in conversations]
        )
        return self.stub.ApplyChatTemplate(request, timeout=self.timeout_s)

    def tokenize(self, texts: Sequence[str], add_special_tokens: bool = False) -> list[list[int]]:
        reply = self.stub.Tokenize(policy_pb2.TokenizeRequest(texts=list(texts), add_special_tokens=add_special_tokens), timeout=self.timeout_s)
        return [list(t.ids) for t in reply.tokens]

    def detokenize(self, tokens: Sequence[Sequence[int]], skip_special_tokens: bool = True) -> list[str]:
        request = policy_pb2.DetokenizeRequest(
            tokens=[common_pb2.TokenIds(ids=list(t)) for t in tokens], skip_special_tokens=skip_special_tokens
        )
        return list(self.stub.Detokenize(request, timeout=self.timeout_s).texts)

    def update_weights_from_path(self, version: int, path: str | Path) -> policy_pb2.UpdateWeightsResponse:
        """Load an HF-format folder that the service can read (shared storage)."""
        header = policy_pb2.WeightsHeader(version=version, checkpoint_path=str(path))
        return self.stub.UpdateWeights(iter([policy_pb2.UpdateWeightsRequest(header=header)]), timeout=self.timeout_s)

    def update_weights_from_staged_file(self, version: int, file: str | Path) -> policy_pb2.UpdateWeightsResponse:
        """Load a safetensors file staged in the service's staging root (same host)."""
        header = policy_pb2.WeightsHeader(version=version, staged_file=str(file))
        return self.stub.UpdateWeights(iter([policy_pb2.UpdateWeightsRequest(header=header)]), timeout=self.timeout_s)

    def update_weights_from_state_dict(
        self, version: int, state_dict: Mapping[str, "torch.Tensor"], chunk_bytes: int = 4 * 1024 * 1024  # noqa: F821
    ) -> policy_pb2.UpdateWeightsResponse:
        """Stream every tensor (HF parameter names) as TensorChunk messages."""
        # Imported here: the wire format needs torch, which callers that only generate never load.
        from outrider.models.tensors import tensor_chunks

        def messages() -> Iterator[policy_pb2.UpdateWeightsRequest]:
            yield policy_pb2.UpdateWeightsRequest(
                header=policy_pb2.WeightsHeader(version=version, streamed_tensors=len(state_dict))
            )
            for chunk in tensor_chunks(state_dict, chunk_bytes):
                yield policy_pb2.UpdateWeightsRequest(chunk=chunk)

        return self.stub.UpdateWeights(messages(), timeout=self.timeout_s)

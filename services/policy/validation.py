"""Request validation: every bad input becomes INVALID_ARGUMENT (or NOT_FOUND) naming the field.

Pure functions over plain values, shared by the gRPC servicer and the OpenAI
HTTP API, so both refuse the same inputs with the same words.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from outrider.config.policy import PolicyLimits
from outrider.serving import InvalidArgument, NotFound
from outrider.services.policy.backend import SamplingSpec

MAX_STOP_STRINGS = 16
MAX_STOP_LENGTH = 256


@dataclass(frozen=True)
class SamplingInput:
    """Sampling fields as a request gives them; None means unset."""

    n: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    seed: int | None = None
    ignore_eos: bool = False


def check_model(requested: str, served: str) -> None:
    """An empty name accepts whatever is served; any other name must match."""
    if requested and requested != served:
        raise NotFound(f"model: unknown model {requested!r}; this service serves {served!r}")


def check_prompt_count(count: int, limits: PolicyLimits, field: str = "prompts") -> None:
    if count == 0:
        raise InvalidArgument(f"{field}: empty; send at least one")
    if count > limits.max_prompts:
        raise InvalidArgument(f"{field}: {count} items exceed the limit of {limits.max_prompts} (limits.max_prompts)")


def sampling_spec(given: SamplingInput, limits: PolicyLimits, vocab_size: int, prefix: str = "sampling") -> SamplingSpec:
    n = 1 if not given.n else given.n
    if n < 0:
        raise InvalidArgument(f"{_field(prefix, 'n')}: {n} is negative")
    if n > limits.max_n:
        raise InvalidArgument(f"{_field(prefix, 'n')}: {n} exceeds the limit of {limits.max_n} (limits.max_n)")
    temperature = 1.0 if given.temperature is None else float(given.temperature)
    if math.isnan(temperature) or temperature < 0 or math.isinf(temperature):
        raise InvalidArgument(f"{_field(prefix, 'temperature')}: {temperature} is not a finite number >= 0")
    top_p = 1.0 if given.top_p is None else float(given.top_p)
    if math.isnan(top_p) or not 0 < top_p <= 1:
        raise InvalidArgument(f"{_field(prefix, 'top_p')}: {top_p} is outside (0, 1]")
    top_k = 0 if given.top_k is None else int(given.top_k)
    if top_k < 0:
        raise InvalidArgument(f"{_field(prefix, 'top_k')}: {top_k} is negative (0 disables top-k)")
    max_tokens = limits.default_max_tokens if given.max_tokens is None else int(given.max_tokens)
    if max_tokens < 1:
        raise InvalidArgument(f"{_field(prefix, 'max_tokens')}: {max_tokens} must be at least 1")
    if max_tokens > limits.max_tokens:
        raise InvalidArgument(f"{_field(prefix, 'max_tokens')}: {max_tokens} exceeds the limit of {limits.max_tokens} (limits.max_tokens)")
    if len(given.stop) > MAX_STOP_STRINGS:
        raise InvalidArgument(f"{_field(prefix, 'stop')}: {len(given.stop)} strings exceed the limit of {MAX_STOP_STRINGS}")
    for i, stop in enumerate(given.stop):
        if not stop:
            raise InvalidArgument(f"{_field(prefix, f'stop[{i}]')}: empty string")
        if len(stop) > MAX_STOP_LENGTH:
            raise InvalidArgument(f"{_field(prefix, f'stop[{i}]')}: longer than {MAX_STOP_LENGTH} characters")
    for i, token in enumerate(given.stop_token_ids):
        if not 0 <= token < vocab_size:
            raise InvalidArgument(f"{_field(prefix, f'stop_token_ids[{i}]')}: {token} is outside the vocabulary [0, {vocab_size})")
    if given.seed is not None and not 0 <= given.seed < 2**63 - limits.max_n:
        raise InvalidArgument(f"{_field(prefix, 'seed')}: {given.seed} is outside [0, 2^63 - max_n)")
    return SamplingSpec(
        n=n, temperature=temperature, top_p=top_p, top_k=top_k, max_tokens=max_tokens,
        stop=tuple(given.stop), stop_token_ids=tuple(given.stop_token_ids), seed=given.seed,
        ignore_eos=given.ignore_eos,
    )


def _field(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


MIN_BYTES_PER_TOKEN = 4
"""Floor of `bytes_per_token`: the longest UTF-8 character, for tokenizers that spend one
token (an unknown-token id, a byte-fallback piece) on any one character."""


def bytes_per_token(token_texts: Iterable[str]) -> int:
    """Most UTF-8 bytes of text one token stands for: the longest of `token_texts` (every
    token of the vocabulary, decoded), at least MIN_BYTES_PER_TOKEN.

    A text of B bytes is then at least B / bytes_per_token tokens long, so a prompt of more
    than max_context x bytes_per_token bytes cannot fit the context: refusing it on its byte
    length (`check_prompt_bytes`), before tokenizing, never refuses a prompt that would fit.
    (Tokenizing is what costs: a 50 MB prompt took the HF tokenizer's resident memory from
    0.6 to 7.8 GB.) Texts that decode to partial UTF-8 count as U+FFFD, 3 bytes: over."""
    return max(MIN_BYTES_PER_TOKEN, max((len(text.encode("utf-8", errors="replace")) for text in token_texts), default=0))


def check_prompt_bytes(size: int, max_context: int | None, per_token: int, where: str) -> None:
    """Refuse a prompt of `size` UTF-8 bytes above max_context x per_token (`bytes_per_token`)
    before it is tokenized; max_context None: no limit."""
    if max_context is not None and size > max_context * per_token:
        raise InvalidArgument(
            f"{where}: {size} bytes exceed the limit of {max_context * per_token} bytes for a prompt "
            f"({max_context} tokens of context (limits.max_context) x {per_token} bytes, the most one token "
            f"of this tokenizer stands for), so it cannot fit the context"
        )


def check_prompt_ids(ids: list[int], max_context: int, where: str) -> None:
    """A prompt must be non-empty and leave room for at least one new token."""
    if not ids:
        raise InvalidArgument(f"{where}: empty prompt")
    if len(ids) >= max_context:
        raise InvalidArgument(
            f"{where}: prompt of {len(ids)} tokens leaves no room in the context of {max_context} tokens (limits.max_context)"
        )


def check_score_sequence(ids: list[int], prompt_length: int, max_context: int, where: str) -> None:
    if not ids:
        raise InvalidArgument(f"{where}.token_ids: empty sequence")
    if prompt_length < 1:
        raise InvalidArgument(f"{where}.prompt_length: {prompt_length} must be at least 1 (the first token has no context)")
    if prompt_length > len(ids):
        raise InvalidArgument(f"{where}.prompt_length: {prompt_length} exceeds the sequence length {len(ids)}")
    if len(ids) > max_context:
        raise InvalidArgument(f"{where}.token_ids: {len(ids)} tokens exceed the context of {max_context} tokens (limits.max_context)")

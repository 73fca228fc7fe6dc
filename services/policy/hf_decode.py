"""The HF backend's decode loop: prefill distinct prompts once, decode all rows step by step.

Left padding with an attention mask and explicit position ids lets prompts of
different lengths share a batch; finished rows leave the KV cache so later
steps cost only what is still running.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from outrider.learner.algos.sampling_support import keep_mask, truncated_logprobs, truncates
from outrider.services.policy.backend import CompletionDelta, CompletionResult, FinishReason, SamplingSpec, TopLogprobs
from outrider.services.policy.sampling import find_stop, sample_tokens


class Row:
    """One completion being decoded, with incremental detokenization (offsets as in TGI/vLLM:
    re-decode a short window and emit only text that no later token can change)."""

    def __init__(self, prompt_index: int, completion_index: int, prompt: list[int], spec: SamplingSpec,
                 budget: int, generator: torch.Generator):
        self.prompt_index = prompt_index
        self.completion_index = completion_index
        self.prompt = prompt
        self.spec = spec
        self.budget = budget
        self.generator = generator
        self.token_ids: list[int] = []
        self.logprobs: list[float] = []
        self.support_logprobs: list[float] = []
        self.top_logprobs: list[TopLogprobs] = []
        self.text = ""
        self.emitted = 0
        self.searched = 0
        self._prefix_offset = 0
        self._read_offset = 0
        self.finish_reason: FinishReason | None = None
        self.stop_string = ""
        # While decoding, the last len(stop)-1 characters may still turn into a stop
        # string, so streamed text holds them back (they are cut if it does).
        self._hold = max((len(s) for s in spec.stop), default=1) - 1

    def finish(self, reason: FinishReason) -> None:
        self.finish_reason = reason

    def _decode_step(self, tokenizer) -> None:
        window = self.token_ids[self._prefix_offset :]
        before = tokenizer.decode(self.token_ids[self._prefix_offset : self._read_offset], skip_special_tokens=True)
        after = tokenizer.decode(window, skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.text += after[len(before) :]
            self._prefix_offset = self._read_offset
            self._read_offset = len(self.token_ids)

    def _flush_text(self, tokenizer) -> None:
        before = tokenizer.decode(self.token_ids[self._prefix_offset : self._read_offset], skip_special_tokens=True)
        after = tokenizer.decode(self.token_ids[self._prefix_offset :], skip_special_tokens=True)
        self.text += after[len(before) :]
        self._prefix_offset = self._read_offset = len(self.token_ids)

    def append(
        self, token: int, logprob: float, tokenizer, stop_ids: frozenset[int], support_logprob: float | None = None,
        top: TopLogprobs | None = None,
    ) -> CompletionDelta:
        self.token_ids.append(token)
        self.logprobs.append(logprob)
        if support_logprob is not None:
            self.support_logprobs.append(support_logprob)
        if top is not None:
            self.top_logprobs.append(top)
        self._decode_step(tokenizer)
        if self.spec.stop:
            found = find_stop(self.text, self.searched, self.spec.stop)
            self.searched = len(self.text)
            if found is not None:
                self.text = self.text[: found[0]]
                self.stop_string = found[1]
                self.finish_reason = "stop"
        if self.finish_reason is None and token in stop_ids:
            self.finish_reason = "stop"
        elif self.finish_reason is None and len(self.token_ids) >= self.budget:
            self.finish_reason = "length"
        if self.finish_reason is not None and not self.stop_string:
            self._flush_text(tokenizer)
        visible = len(self.text) if self.finish_reason else max(self.emitted, len(self.text) - self._hold)
        delta = CompletionDelta(
            self.prompt_index, self.completion_index, [token], [logprob], self.text[self.emitted : visible],
            self.finish_reason, self.stop_string, [top] if top is not None else [],
        )
        self.emitted = visible
        return delta

    def abort_delta(self) -> CompletionDelta:
        self.finish_reason = "abort"
        return CompletionDelta(self.prompt_index, self.completion_index, [], [], "", "abort")

    def result(self) -> CompletionResult:
        assert self.finish_reason is not None
        return CompletionResult(
            list(self.token_ids), list(self.logprobs), self.finish_reason, self.stop_string, self.text,
            list(self.support_logprobs), list(self.top_logprobs),
        )


def _left_padded(prompts: list[tuple[int, ...]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, prompt in enumerate(prompts):
        ids[i, width - len(prompt) :] = torch.tensor(prompt)
        mask[i, width - len(prompt) :] = 1
    return ids, mask


@torch.inference_mode()
def decode_rows(
    model,
    rows: list[Row],
    *,
    device: str,
    eos_token_ids: tuple[int, ...],
    tokenizer,
    is_cancelled: Callable[[Row], bool],
    on_delta: Callable[[Row, CompletionDelta], None],
    on_finish: Callable[[Row], None],
) -> None:
    from transformers import DynamicCache

    distinct = list(dict.fromkeys(tuple(row.prompt) for row in rows))
    source = torch.tensor([distinct.index(tuple(row.prompt)) for row in rows], device=device)
    ids, mask = _left_padded(distinct, pad=eos_token_ids[0] if eos_token_ids else 0)
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True,
                logits_to_keep=1)
    cache.batch_select_indices(source)
    logits = out.logits[source, -1].float()
    mask, last_position = mask[source], positions[source, -1]

    active = list(range(len(rows)))
    stop_ids = [frozenset(row.spec.stop_token_ids) | (frozenset() if row.spec.ignore_eos else frozenset(eos_token_ids))
                for row in rows]
    temperature = torch.tensor([row.spec.temperature for row in rows], device=device)
    top_k = torch.tensor([row.spec.top_k for row in rows], device=device)
    top_p = torch.tensor([row.spec.top_p for row in rows], device=device)
    truncating = bool(truncates(temperature, top_k, top_p).any())
    while True:
        tokens = sample_tokens(logits, temperature, top_k, top_p, [rows[r].generator for r in active])
        logprobs = torch.log_softmax(logits, dim=-1)
        picked = logprobs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).tolist()
        tops = _top_logprobs(logprobs, [rows[r].spec.top_logprobs for r in active])
        # Over the support each token was drawn from, renormalised (untempered logits):
        # what the learner recomputes from the turn's recorded top-k/top-p.
        in_support: list[float | None] = [None] * len(active)
        if truncating:
            values = truncated_logprobs(logits, tokens, keep_mask(logits, temperature, top_k, top_p)).tolist()
            rows_truncating = truncates(temperature, top_k, top_p).tolist()
            in_support = [v if t else None for v, t in zip(values, rows_truncating)]
        keep = []
        for b, (r, token) in enumerate(zip(active, tokens.tolist())):
            row = rows[r]
            delta = row.abort_delta() if is_cancelled(row) else row.append(
                token, picked[b], tokenizer, stop_ids[r], in_support[b], tops[b]
            )
            on_delta(row, delta)
            if row.finish_reason is None:
                keep.append(b)
            else:
                on_finish(row)
        if not keep:
            return
        if len(keep) < len(active):
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            mask, last_position, tokens = mask[index], last_position[index], tokens[index]
            temperature, top_k, top_p = temperature[index], top_k[index], top_p[index]
            active = [active[b] for b in keep]
        mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=-1)
        last_position = last_position + 1
        out = model(input_ids=tokens.unsqueeze(-1), attention_mask=mask, position_ids=last_position.unsqueeze(-1),
                    past_key_values=cache, use_cache=True)
        logits = out.logits[:, -1].float()


def _top_logprobs(logprobs: torch.Tensor, counts: list[int]) -> list[TopLogprobs | None]:
    """The counts[b] most likely (token, log-prob) pairs of row b, most likely first (None where
    counts[b] == 0). One top-k over the batch, at the largest count; nothing when all are 0.
    Shape: logprobs (B, V) raw log-probabilities."""
    width = max(counts, default=0)
    if width == 0:
        return [None] * len(counts)
    values, indices = logprobs.topk(width, dim=-1)
    values, indices = values.tolist(), indices.tolist()
    return [list(zip(indices[b][:n], values[b][:n])) if n else None for b, n in enumerate(counts)]

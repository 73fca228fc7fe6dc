"""The actor's and reference's forward over a micro-batch, computing each prompt once.

A group's G sequences begin with the same prompt (tokens[:prompt_length]). A plain
forward runs that prompt G times; in a GRPO step with short answers the prompts are
half of all tokens (vs-TRL workload: 64 × 45 prompt tokens beside ~2,700 completion
tokens). Here each distinct prefix runs once, and the rest of every sequence runs on
top of its prefix's key/value cache, which is indexed out to the rows that share it:

    prefix pass:   unique prefixes (U, P)            → hidden (U, P, H), KV cache (U, …)
    suffix pass:   tokens[p_i:L_i] of each row (B, S) on the cache rows of its prefix,
                   position ids p_i + s, attention over [its prefix | its suffix]
    head:          LM head and log-softmax only at the N trained target positions

Causal attention makes this exact: a prompt token's keys and values do not depend on
what follows it, so every position sees the same inputs as in the full forward. The
cache tensors are part of the autograd graph, so the backward accumulates each prefix's
gradient from all its rows — the same sum the repeated forward would produce.

The logit of target j comes from position j; the first completion token is predicted by
the prefix's last position (p_i − 1), every later one by a suffix position. Supported
where the model's logits are exactly ``lm_head(decoder(x))`` (Llama, Qwen2/3, Mistral),
without gradient checkpointing (HF drops the cache then) and below ZeRO-3 (whose
parameter gathering is driven by the engine's own forward); elsewhere the caller uses
the plain forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from outrider.learner.algos import entropy_from_logits, logprobs_from_logits
from outrider.learner.batch import SequenceBatch

PLAIN_HEAD_MODEL_TYPES = frozenset({"llama", "qwen2", "qwen3", "mistral"})
"""HF model types whose causal-LM logits are exactly lm_head(decoder hidden states)."""


def supports_shared_prefix(model: nn.Module) -> bool:
    """Whether :func:`shared_prefix_logprobs` computes exactly what the model's forward does."""
    module = getattr(model, "module", model)  # a DeepSpeed engine wraps the HF model
    config = getattr(module, "config", None)
    if config is None or getattr(config, "model_type", None) not in PLAIN_HEAD_MODEL_TYPES:
        return False
    if getattr(module, "is_gradient_checkpointing", False):
        return False
    stage = getattr(model, "zero_optimization_stage", None)
    return not (callable(stage) and stage() >= 3)


@dataclass(frozen=True)
class PrefixPlan:
    """Which rows share which prefix. Shapes: (B,) and (U,) long."""

    prefix_of_row: Tensor
    """Index of each row's prefix among the unique prefixes."""
    row_prefix: Tensor
    """p_i: tokens of row i computed in the prefix pass (≥ 1, < L_i)."""
    prefix_lengths: Tensor
    """Length of each unique prefix."""

    @property
    def unique(self) -> int:
        return int(self.prefix_lengths.numel())


def plan_prefixes(batch: SequenceBatch) -> PrefixPlan:
    """Rows with identical first p tokens share one prefix.

    p_i = prompt_length_i, cut back so that the prefix holds no trained target (the
    first trained target j predicts token j + 1 from position j, so p_i ≤ j + 1) and
    leaves at least one token to the suffix; at least 1. Token equality is checked,
    not assumed from group ids.
    """
    mask = batch.mask.bool()
    b = mask.shape[0]
    first_trained = torch.where(mask.any(-1), mask.float().argmax(-1), torch.full((b,), mask.shape[1]))
    p = torch.minimum(torch.minimum(batch.prompt_lengths, first_trained + 1), batch.lengths - 1).clamp(min=1)
    ids = batch.input_ids.tolist()
    keys: dict[tuple[int, ...], int] = {}
    prefix_of_row = []
    for row, length in enumerate(p.tolist()):
        prefix_of_row.append(keys.setdefault(tuple(ids[row][:length]), len(keys)))
    lengths = [len(key) for key in keys]
    return PrefixPlan(torch.tensor(prefix_of_row), p, torch.tensor(lengths))


def _right_padded(rows: list[list[int]], device: torch.device) -> tuple[Tensor, Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    attention = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        attention[i, : len(r)] = 1
    return ids.to(device), attention.to(device)


def trained_hidden(model: nn.Module, batch: SequenceBatch, plan: PrefixPlan, rows: Tensor, cols: Tensor) -> Tensor:
    """Final hidden states at target positions (rows[n], cols[n]), each col ≥ p_row − 1.

    Shape: rows, cols (N,) -> (N, H).
    """
    module = getattr(model, "module", model)
    decoder = module.get_decoder()
    device = batch.input_ids.device
    ids = batch.input_ids.tolist()
    p = plan.row_prefix.tolist()
    lengths = batch.lengths.tolist()
    firsts = {}
    for row, prefix in enumerate(plan.prefix_of_row.tolist()):
        firsts.setdefault(prefix, row)
    prefix_ids, prefix_attention = _right_padded([ids[firsts[u]][: p[firsts[u]]] for u in range(plan.unique)], device)
    out = decoder(input_ids=prefix_ids, attention_mask=prefix_attention, use_cache=True)
    prefix_hidden, cache = out.last_hidden_state, out.past_key_values
    owner = plan.prefix_of_row.to(device)
    cache.batch_select_indices(owner)

    suffix_ids, suffix_attention = _right_padded([ids[i][p[i] : lengths[i]] for i in range(len(p))], device)
    offsets = plan.row_prefix.to(device)[:, None]
    positions = offsets + torch.arange(suffix_ids.shape[1], device=device)[None, :]
    attention = torch.cat([prefix_attention[owner], suffix_attention], dim=1)
    suffix_hidden = decoder(
        input_ids=suffix_ids, attention_mask=attention, position_ids=positions, past_key_values=cache, use_cache=True
    ).last_hidden_state

    row_p = plan.row_prefix.to(device)[rows]
    from_prefix = (cols == row_p - 1)[:, None]
    in_prefix = prefix_hidden[owner[rows], cols.clamp(max=prefix_hidden.shape[1] - 1)]
    in_suffix = suffix_hidden[rows, (cols - row_p).clamp(min=0, max=suffix_hidden.shape[1] - 1)]
    return torch.where(from_prefix, in_prefix, in_suffix)


def shared_prefix_logprobs(
    model: nn.Module, batch: SequenceBatch, with_entropy: bool = False, entropy_grad: bool = True
) -> tuple[Tensor, Tensor | None]:
    """log π(target_j | prefix) (and the entropy) at the trained targets, each prompt
    computed once (module docstring); 0 at every other position.

    Shape: (B, T) each, float32 (float64 for a float64 model).
    """
    mask = batch.mask.bool()
    plan = plan_prefixes(batch)
    rows, cols = mask.nonzero(as_tuple=True)
    if rows.numel() == 0:
        zeros = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
        return zeros, zeros.clone() if with_entropy else None
    hidden = trained_hidden(model, batch, plan, rows, cols)
    logits = getattr(model, "module", model).get_output_embeddings()(hidden)
    picked = logprobs_from_logits(logits, batch.targets[rows, cols])
    logprobs = picked.new_zeros(mask.shape).index_put((rows, cols), picked)
    entropy = None
    if with_entropy:
        if entropy_grad:
            values = entropy_from_logits(logits)
        else:
            with torch.no_grad():
                values = entropy_from_logits(logits.detach())
        entropy = values.new_zeros(mask.shape).index_put((rows, cols), values)
    return logprobs, entropy

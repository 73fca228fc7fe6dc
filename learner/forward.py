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

Packed suffix (Llama, Qwen2, Qwen3 decoders): the suffix pass does not pad. Rows' completions
differ in length by 10× and more (a 2-token "42" beside a 128-token explanation), and a
padded (B, S) pass runs every projection and MLP over B × max(S_i) positions, on the
vs-TRL workload 1.6–1.8× the real tokens. Here the decoder layers run on the packed
(N, H) hidden states of the N = Σ S_i real suffix positions; only attention sees a
padded layout, which it needs: rows are bucketed by the power of two of their suffix
length (`length_buckets`), and each bucket is padded to its own longest row only:

    x (N, H) → norm → q, k, v = proj(x)  (N, ·) → per bucket: scatter to (n, heads, S_b, d)
             → RoPE → keys/values after the rows' prefix cache → attention (n, heads, S_b, d)
             → gather → (N, heads·d) → o_proj → + x → norm → MLP → + x

The same modules run on the same values in the same order, so this is exact as well
(tests/unit/learner/test_learner_shared_prefix.py compares with a plain transformers
forward in float64).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from outrider.learner.algos import logprobs_and_entropy, logprobs_from_logits
from outrider.learner.batch import SequenceBatch

PLAIN_HEAD_MODEL_TYPES = frozenset({"llama", "qwen2", "qwen3", "mistral"})
"""HF model types whose causal-LM logits are exactly lm_head(decoder hidden states)."""
PACKED_MODEL_TYPES = frozenset({"llama", "qwen2", "qwen3"})
"""Model types whose decoder layer is exactly: x + attn(norm(x)), then x + mlp(norm(x)), with
the attention of `_packed_attention` (q/k/v projections, optional per-head q/k norms, RoPE,
softmax attention over the cache, o_proj): what the packed suffix pass reimplements."""


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
    if supports_packed_suffix(module, max(lengths)):
        suffix_hidden = _packed_suffix_hidden(decoder, suffix_ids, suffix_attention, prefix_attention[owner], positions, cache)
    else:
        suffix_hidden = decoder(
            input_ids=suffix_ids, attention_mask=attention, position_ids=positions, past_key_values=cache, use_cache=True
        ).last_hidden_state

    row_p = plan.row_prefix.to(device)[rows]
    from_prefix = (cols == row_p - 1)[:, None]
    in_prefix = prefix_hidden[owner[rows], cols.clamp(max=prefix_hidden.shape[1] - 1)]
    in_suffix = suffix_hidden[rows, (cols - row_p).clamp(min=0, max=suffix_hidden.shape[1] - 1)]
    return torch.where(from_prefix, in_prefix, in_suffix)


def supports_packed_suffix(module: nn.Module, longest: int) -> bool:
    """Whether the packed suffix pass (module docstring) computes exactly what the decoder does.

    Not for other architectures, not with attention dropout in training, and not where a
    sliding window could cut a sequence of `longest` tokens (the pass attends to all of it).
    """
    config = getattr(module, "config", None)
    if config is None or getattr(config, "model_type", None) not in PACKED_MODEL_TYPES:
        return False
    if module.training and getattr(config, "attention_dropout", 0.0):
        return False
    if getattr(config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return False
    window = getattr(config, "sliding_window", None)
    uses_window = getattr(config, "use_sliding_window", window is not None) or "sliding_attention" in (
        getattr(config, "layer_types", None) or ()
    )
    return not (uses_window and window is not None and longest > window)


def length_buckets(lengths: list[int]) -> list[list[int]]:
    """Row indices grouped by the power of two of their length: [1], [2, 3], [4..7], [8..15], ...,
    shortest bucket first. The packed pass pads each bucket's attention only to its own longest
    row; on the vs-TRL workload (completions ~exponential, mean 42, at most 128) that cuts the
    attention's padded work to ~1/3 of one (B, max S) call."""
    buckets: dict[int, list[int]] = {}
    for row, length in enumerate(lengths):
        buckets.setdefault(max(length, 1).bit_length(), []).append(row)
    return [buckets[k] for k in sorted(buckets)]


@dataclass(frozen=True)
class _Bucket:
    """Rows of the packed pass whose attention runs together, padded to `width`."""

    rows: Tensor
    """(n,) the rows of the micro-batch in this bucket."""
    local: tuple[Tensor, Tensor]
    """(row in bucket, column) of each real token, in packed order."""
    width: int
    cos: Tensor
    sin: Tensor
    mask: Tensor
    """(n, 1, S, P + S): a query sees its row's real prefix keys and its suffix keys t <= s."""


def _packed_suffix_hidden(
    decoder: nn.Module, ids: Tensor, valid: Tensor, prefix_valid: Tensor, positions: Tensor, cache
) -> Tensor:
    """The decoder's final hidden states over right-padded suffixes (B, S), computed on the
    real positions only (module docstring); 0 at padded ones. `cache` holds each row's prefix
    keys/values (B rows), `prefix_valid` (B, P) which of them are real.

    Shape: ids, valid, positions (B, S); prefix_valid (B, P) -> (B, S, H).
    """
    b, s = ids.shape
    device = ids.device
    eager = decoder.config._attn_implementation != "sdpa"
    buckets, tokens, global_rows, global_cols = [], [], [], []
    for members in length_buckets(valid.sum(-1).tolist()):
        rows = torch.tensor(members, device=device)
        width = max(int(valid[rows].sum(-1).max()), 1)
        local_valid = valid[rows, :width].bool()
        r, c = local_valid.nonzero(as_tuple=True)
        causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
        mask = torch.cat(
            [prefix_valid[rows].bool()[:, None, :].expand(-1, width, -1), causal[None] & local_valid[:, None, :]], dim=-1
        )[:, None]
        tokens.append(ids[rows, :width][r, c])
        global_rows.append(rows[r])
        global_cols.append(c)
        buckets.append((rows, (r, c), width, mask))
    x = decoder.embed_tokens(torch.cat(tokens))  # (N, H), bucket after bucket
    prepared = []
    for rows, local, width, mask in buckets:
        cos, sin = decoder.rotary_emb(x, positions[rows, :width])
        if eager:  # eager attention adds its mask to the scores
            mask = torch.zeros(mask.shape, dtype=x.dtype, device=device).masked_fill(~mask, torch.finfo(x.dtype).min)
        prepared.append(_Bucket(rows, local, width, cos, sin, mask))
    prefix_kv = [(layer.keys, layer.values) for layer in cache.layers]
    for layer in decoder.layers[: decoder.config.num_hidden_layers]:
        attn = layer.self_attn
        x = x + _packed_attention(attn, layer.input_layernorm(x), prepared, prefix_kv[attn.layer_idx])
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    x = decoder.norm(x)
    return x.new_zeros(b, s, x.shape[-1]).index_put((torch.cat(global_rows), torch.cat(global_cols)), x)


def _packed_attention(attn: nn.Module, h: Tensor, buckets: list[_Bucket], prefix_kv: tuple[Tensor, Tensor]) -> Tensor:
    """One self-attention block on packed inputs h (N, H): HF's own projections, norms, RoPE
    and attention function, with only the attention itself on each bucket's padded
    (n, heads, S, d) layout, after the bucket rows' prefix keys/values."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    model_code = sys.modules[type(attn).__module__]  # the architecture's own apply_rotary_pos_emb
    attend = ALL_ATTENTION_FUNCTIONS.get_interface(attn.config._attn_implementation, model_code.eager_attention_forward)
    d = attn.head_dim

    def heads(projection: nn.Module, norm: nn.Module | None) -> Tensor:
        packed = projection(h).view(h.shape[0], -1, d)  # (N, heads, d)
        return norm(packed) if norm is not None else packed  # Qwen3: RMSNorm of each head's q and k

    q = heads(attn.q_proj, getattr(attn, "q_norm", None))
    k = heads(attn.k_proj, getattr(attn, "k_norm", None))
    v = heads(attn.v_proj, None)
    sizes = [bucket.local[0].numel() for bucket in buckets]
    outputs = []
    for bucket, q_b, k_b, v_b in zip(buckets, q.split(sizes), k.split(sizes), v.split(sizes), strict=True):
        n = bucket.rows.numel()

        def padded(packed: Tensor) -> Tensor:
            return packed.new_zeros(n, bucket.width, *packed.shape[1:]).index_put(bucket.local, packed).transpose(1, 2)

        q_p, k_p = model_code.apply_rotary_pos_emb(padded(q_b), padded(k_b), bucket.cos, bucket.sin)
        keys = torch.cat([prefix_kv[0][bucket.rows], k_p], dim=2)
        values = torch.cat([prefix_kv[1][bucket.rows], padded(v_b)], dim=2)
        out, _ = attend(attn, q_p, keys, values, bucket.mask, dropout=0.0, scaling=attn.scaling)  # (n, S, heads, d)
        outputs.append(out[bucket.local])
    return attn.o_proj(torch.cat(outputs).reshape(h.shape[0], -1))


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
    targets = batch.targets[rows, cols]
    entropy = None
    if with_entropy:
        picked, values = logprobs_and_entropy(logits, targets, entropy_grad)
        entropy = values.new_zeros(mask.shape).index_put((rows, cols), values)
    else:
        picked = logprobs_from_logits(logits, targets)
    logprobs = picked.new_zeros(mask.shape).index_put((rows, cols), picked)
    return logprobs, entropy

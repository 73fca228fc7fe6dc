"""The learner's models: the actor (causal LM), the frozen reference and distillation
teacher, the value critic.

All of them load from HF folders (a built-in name is materialized first by
`outrider.models.resolve_model`). The critic is the same backbone with a
scalar head (`AutoModelForTokenClassification`, one label), so it saves and
loads like any HF model.
"""

from __future__ import annotations

import inspect
from functools import cache
from pathlib import Path

import torch
from torch import Tensor, nn
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForTokenClassification

from outrider.learner.algos import entropy_from_logits, logprobs_from_logits
from outrider.learner.algos.sampling_support import keep_mask, truncated_entropy, truncated_logprobs, truncates
from outrider.learner.batch import SequenceBatch
from outrider.learner.forward import shared_prefix_logprobs, supports_shared_prefix
from outrider.models import resolve_model


def model_folder(spec: str) -> Path:
    return resolve_model(spec)


def load_actor(spec: str, gradient_checkpointing: bool = False) -> nn.Module:
    model = AutoModelForCausalLM.from_pretrained(model_folder(spec), dtype=torch.float32)
    _disable_dropout(model)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    return model


def load_reference(spec: str) -> nn.Module:
    model = AutoModelForCausalLM.from_pretrained(model_folder(spec), dtype=torch.float32)
    model.requires_grad_(False)
    return model.eval()


def load_teacher(spec: str, student: nn.Module) -> nn.Module:
    """The frozen teacher of on-policy distillation. It scores the student's token ids, so
    both must share the vocabulary: a different output width fails here, naming the field."""
    teacher = load_reference(spec)
    widths = {name: _vocabulary(model) for name, model in (("teacher", teacher), ("student", student))}
    if widths["teacher"] != widths["student"]:
        raise ValueError(
            f"learner.algorithm.distillation.teacher {spec!r} has a vocabulary of {widths['teacher']} tokens, "
            f"the actor {widths['student']}: the teacher must score the actor's token ids"
        )
    return teacher


def _vocabulary(model: nn.Module) -> int:
    weight = model.get_output_embeddings().weight
    return getattr(weight, "ds_shape", weight.shape)[0]  # ZeRO-3 partitions leave shape (0,)


def load_critic(spec: str, gradient_checkpointing: bool = False, seed: int = 0) -> nn.Module:
    folder = model_folder(spec)
    config = AutoConfig.from_pretrained(folder, num_labels=1)
    # The head is freshly initialised: seed it so every rank (and a rerun) agrees.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForTokenClassification.from_pretrained(folder, config=config, dtype=torch.float32)
    _disable_dropout(model)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def _disable_dropout(model: nn.Module) -> None:
    # RL needs log π(y) of the same function at sampling and training time.
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0


def first_trained_target(mask: Tensor) -> int:
    """The first target position that any row trains on (0 when none does). Shape: mask (B, T)."""
    trained = mask.bool().any(0)
    return int(trained.nonzero()[0, 0]) if bool(trained.any()) else 0


@cache
def _takes_logits_to_keep(forward_type: type) -> bool:
    return "logits_to_keep" in inspect.signature(forward_type.forward).parameters


def token_logprobs(
    model: nn.Module,
    batch: SequenceBatch,
    with_entropy: bool = False,
    entropy_grad: bool = True,
    shared_prefix: bool = True,
    sampled_support: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """log π(target_j | prefix) and (optionally) the entropy at each target position.

    With ``sampled_support`` and a batch whose turns were sampled with top-k/top-p
    (``batch.sampling``), both are taken over that truncated support, renormalised
    (outrider.learner.algos.sampling_support): the distribution the sampler drew from.
    The reference and a distillation teacher pass False (their full distributions).

    Where the model allows it (:func:`supports_shared_prefix`), each distinct prompt of
    the micro-batch runs once and the LM head only at trained targets
    (outrider.learner.forward); positions off the mask are then 0. Otherwise (or with
    ``shared_prefix=False``) the LM head and the log-softmax over the vocabulary run only
    from the first position any row trains on (HF's ``logits_to_keep``): prompt positions
    would be multiplied by a zero mask, and for a small model with a large vocabulary
    (SmolLM2: 576 × 49,152) they are a fifth of the forward's FLOPs. Positions before it
    are 0 in the outputs.
    ``entropy_grad=False`` computes the entropy detached (no autograd graph through a
    (B, T, V) softmax that nothing differentiates).
    Shape: (B, T) each, float32.
    """
    truncated = sampled_support and batch.sampling is not None
    # The shared-prefix pass computes full-vocabulary log-probs at trained targets only;
    # a truncated support takes the plain forward.
    if shared_prefix and not truncated and supports_shared_prefix(model):
        return shared_prefix_logprobs(model, batch, with_entropy, entropy_grad)
    t = batch.mask.shape[1]
    module = getattr(model, "module", model)  # a DeepSpeed engine wraps the HF model
    first = first_trained_target(batch.mask) if _takes_logits_to_keep(type(module)) else 0
    kwargs = {"logits_to_keep": t + 1 - first} if first else {}
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **kwargs).logits[:, :-1]
    logprobs = _pad_left(logprobs_from_logits(logits, batch.targets[:, first:]), first)
    entropy = None
    if with_entropy and entropy_grad:
        entropy = _pad_left(entropy_from_logits(logits), first)
    elif with_entropy:
        with torch.no_grad():
            entropy = _pad_left(entropy_from_logits(logits.detach()), first)
    if truncated:
        logprobs, entropy = _over_sampled_support(logits, batch, first, logprobs, entropy, entropy_grad)
    return logprobs, entropy


def _over_sampled_support(
    logits: Tensor, batch: SequenceBatch, first: int, logprobs: Tensor, entropy: Tensor | None, entropy_grad: bool
) -> tuple[Tensor, Tensor | None]:
    """Log-probs (and entropies) at the trained targets whose turn truncated its support,
    recomputed over that support S from these logits: log π_S(y) = z_y − logsumexp_S z.
    The sampled token is in the sampler's S by definition, so it is kept in S even where
    these logits would put it just outside (a boundary the two computations may draw
    differently). logits (B, T − first, V); the rest (B, T)."""
    params = batch.sampling[:, first:].to(logits.device)
    temperature, top_k, top_p = params[..., 0], params[..., 1].long(), params[..., 2]
    at = truncates(temperature, top_k, top_p) & batch.mask[:, first:].to(logits.device).bool()
    if not bool(at.any()):
        return logprobs, entropy
    index = at.nonzero(as_tuple=True)
    z = logits[index]
    targets = batch.targets[:, first:].to(logits.device)[index]
    keep = keep_mask(z.detach(), temperature[index], top_k[index], top_p[index])
    keep[torch.arange(len(targets), device=keep.device), targets] = True
    full = (index[0], index[1] + first)
    logprobs = logprobs.index_put(full, truncated_logprobs(z, targets, keep).to(logprobs.dtype))
    if entropy is not None:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            values = truncated_entropy(z if entropy_grad else z.detach(), keep)
        entropy = entropy.index_put(full, values.to(entropy.dtype))
    return logprobs, entropy


def _pad_left(x: Tensor, count: int) -> Tensor:
    return torch.nn.functional.pad(x, (count, 0)) if count else x


def token_values(critic: nn.Module, batch: SequenceBatch) -> Tensor:
    """V(s_j), the critic's value of the state before target j. Shape: (B, T), float32."""
    scores = critic(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    return scores[:, :-1, 0].float()

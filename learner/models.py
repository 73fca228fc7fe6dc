"""The learner's models: the actor (causal LM), the frozen reference, the value critic.

All three load from HF folders (a built-in name is materialized first by
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
) -> tuple[Tensor, Tensor | None]:
    """log π(target_j | prefix) and (optionally) the entropy at each target position.

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
    if shared_prefix and supports_shared_prefix(model):
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
    return logprobs, entropy


def _pad_left(x: Tensor, count: int) -> Tensor:
    return torch.nn.functional.pad(x, (count, 0)) if count else x


def token_values(critic: nn.Module, batch: SequenceBatch) -> Tensor:
    """V(s_j), the critic's value of the state before target j. Shape: (B, T), float32."""
    scores = critic(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    return scores[:, :-1, 0].float()

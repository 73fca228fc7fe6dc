"""Training a scalar-head PRM (per-step classification) or ORM (Bradley–Terry).

Objectives, with z = the scalar head's logit read at a step's separator token:

* classification: binary cross-entropy on every labelled step,
  L = −[y log σ(z) + (1 − y) log(1 − σ(z))], averaged over the steps of a batch;
* bradley-terry: for a preference pair read at the last step of each solution,
  L = −log σ(z_chosen − z_rejected) (Bradley & Terry 1952; the reward-model
  loss of Ouyang et al. 2022), the `bradley_terry` entry of the learner's
  preference-loss registry.

The model is any decoder-only `AutoModelForSequenceClassification` with one
label; `tiny_scorer` builds a small randomly initialised Llama with a byte
tokenizer that learns the synthetic arithmetic task in a minute on a CPU, and
`--base` starts from a pretrained model (e.g. SmolLM2-135M) instead.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from outrider.learner.algos.preference import PREFERENCE_LOSSES, PreferenceInputs
from outrider.services.reward.prm.dataset import PairRecord, StepsRecord, as_conversation
from outrider.services.reward.prm.encoding import DEFAULT_SEPARATOR, EncodedSteps, encode_steps
from outrider.services.reward.prm.scalar_head import PRM_META_FILE, pad_batch, position_logits

log = logging.getLogger(__name__)

Objective = Literal["classification", "bradley-terry"]


@dataclass(frozen=True)
class TrainSettings:
    objective: Objective = "classification"
    steps: int = 1000
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 20
    seed: int = 0
    separator: str = DEFAULT_SEPARATOR
    device: str = "cpu"
    threads: int | None = None
    """CPU threads while training (None: torch's default). A tiny model trains fastest on
    one: its matrices are too small to split, and on a shared machine a second
    spinning thread can make it ten times slower."""


def byte_tokenizer():
    """A byte-level tokenizer (256 bytes + pad/eos/unk) that AutoTokenizer reloads from a folder."""
    from transformers import ByT5Tokenizer

    return ByT5Tokenizer(extra_ids=0)


def tiny_scorer(tokenizer, hidden_size: int = 64, layers: int = 2, heads: int = 4, seed: int = 0):
    """A small randomly initialised Llama with a one-label `score` head."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=1024,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    return LlamaForSequenceClassification(config)


def pretrained_scorer(path: str | Path):
    """A pretrained decoder with a fresh one-label head (the backbone's weights are kept)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def encode_record(tokenizer, prompt: str, steps: Sequence[str], separator: str) -> EncodedSteps:
    messages, spans = as_conversation(prompt, steps)
    return encode_steps(tokenizer, messages, spans, separator)


def auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve = P(score of a random positive > score of a random negative), ties count 1/2.

    Mann–Whitney form: AUC = (Σ ranks of positives − n₊(n₊+1)/2) / (n₊ n₋), with
    average ranks for ties.
    """
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    positives, negatives = int((y == 1).sum()), int((y == 0).sum())
    if positives == 0 or negatives == 0:
        raise ValueError("AUC needs at least one positive and one negative label")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _schedule(step: int, settings: TrainSettings) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak learning rate."""
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def _batch_logits(model, encoded: Sequence[EncodedSteps], pad_id: int, device: torch.device) -> list[torch.Tensor]:
    ids, mask = pad_batch([e.ids for e in encoded], pad_id)
    logits = position_logits(model, ids.to(device), mask.to(device))
    return [logits[row, torch.tensor(e.ends, device=device)] for row, e in enumerate(encoded)]


def train(
    model,
    tokenizer,
    data: Sequence[StepsRecord] | Sequence[PairRecord],
    settings: TrainSettings,
    on_log: Callable[[dict], None] | None = None,
    log_every: int = 50,
) -> list[dict]:
    """Fit `model` in place; returns the logged history (step, loss, lr)."""
    previous_threads = torch.get_num_threads()
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    try:
        return _train(model, tokenizer, data, settings, on_log, log_every)
    finally:
        torch.set_num_threads(previous_threads)


def _train(model, tokenizer, data, settings: TrainSettings, on_log, log_every: int) -> list[dict]:
    if not data:
        raise ValueError("no training data")
    pairs = settings.objective == "bradley-terry"
    if pairs != isinstance(data[0], PairRecord):
        raise ValueError(f"objective {settings.objective!r} needs {'pair' if pairs else 'step'} records")
    device = torch.device(settings.device)
    model.to(device).train()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    if pairs:
        examples = [
            (encode_record(tokenizer, r.prompt, r.chosen, settings.separator), encode_record(tokenizer, r.prompt, r.rejected, settings.separator))
            for r in data
        ]
    else:
        examples = [(encode_record(tokenizer, r.prompt, r.steps, settings.separator), r.labels) for r in data]
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _schedule(step, settings))
    rng = random.Random(settings.seed)
    torch.manual_seed(settings.seed)
    history = []
    for step in range(settings.steps):
        batch = [examples[rng.randrange(len(examples))] for _ in range(settings.batch_size)]
        if pairs:
            read = _batch_logits(model, [c for c, _ in batch] + [r for _, r in batch], pad_id, device)
            chosen = torch.stack([z[-1] for z in read[: len(batch)]])
            rejected = torch.stack([z[-1] for z in read[len(batch) :]])
            loss = PREFERENCE_LOSSES.get("bradley_terry")(PreferenceInputs(chosen, rejected)).loss.mean()
        else:
            read = _batch_logits(model, [e for e, _ in batch], pad_id, device)
            labels = torch.tensor([y for _, ys in batch for y in ys], dtype=torch.float32, device=device)
            loss = F.binary_cross_entropy_with_logits(torch.cat(read), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        if step % log_every == 0 or step == settings.steps - 1:
            entry = {"step": step, "loss": loss.item(), "lr": scheduler.get_last_lr()[0]}
            history.append(entry)
            (on_log or (lambda e: log.info("step %(step)d loss %(loss).4f lr %(lr).2e", e)))(entry)
    model.eval()
    return history


@torch.inference_mode()
def step_scores(model, tokenizer, records: Sequence[StepsRecord], separator: str = DEFAULT_SEPARATOR, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Flattened s_t and labels of every step of `records` (for AUC)."""
    model.eval()
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    scores, labels = [], []
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        encoded = [encode_record(tokenizer, r.prompt, r.steps, separator) for r in chunk]
        for z, record in zip(_batch_logits(model, encoded, pad_id, device), chunk, strict=True):
            scores.extend(torch.sigmoid(z.double()).cpu().tolist())
            labels.extend(record.labels)
    return np.asarray(scores), np.asarray(labels)


@torch.inference_mode()
def pair_accuracy(model, tokenizer, pairs: Sequence[PairRecord], separator: str = DEFAULT_SEPARATOR) -> float:
    """Fraction of pairs whose chosen solution scores strictly higher at its last step."""
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    wins = 0
    for pair in pairs:
        encoded = [encode_record(tokenizer, pair.prompt, steps, separator) for steps in (pair.chosen, pair.rejected)]
        chosen, rejected = _batch_logits(model, encoded, pad_id, device)
        wins += int(chosen[-1] > rejected[-1])
    return wins / len(pairs)


def save_scorer(model, tokenizer, out: str | Path, settings: TrainSettings, metrics: dict) -> Path:
    """Write an HF folder the reward service loads, plus how its inputs were built."""
    from transformers.utils import logging as hf_logging

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hf_logging.disable_progress_bar()  # a bar on stdout would garble the CLI's output
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    meta = {"step_separator": settings.separator, "objective": settings.objective, "settings": asdict(settings), "metrics": metrics}
    (out / PRM_META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out

"""A PRM that is a transformers model with a scalar head.

Any `AutoModelForSequenceClassification` of a decoder-only architecture with
`num_labels=1` works (SmolLM2-135M, Qwen2, Llama, ...): those heads are a
linear layer named `score` applied to every position. We apply it to every
position ourselves and read the logit at each step's separator token, so one
causal pass scores all steps: s_t = sigmoid(logit_t).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from outrider.services.reward.prm.encoding import DEFAULT_SEPARATOR, EncodedSteps, encode_steps
from outrider.proto.chat import Message
from outrider.services.reward.prm.segmentation import StepSpan

# Written next to a trained model: how its inputs were built.
PRM_META_FILE = "outrider_prm.json"


def position_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The scalar head applied at every position. Shape: (B, T) -> (B, T), float32."""
    head = getattr(model, "score", None)
    if head is None:
        raise TypeError(
            f"{type(model).__name__} has no `score` head: only decoder-only sequence-classification "
            "models are supported (step scores are read per position in one causal pass)"
        )
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    return head(hidden).squeeze(-1).float()


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad: a causal model's outputs at real positions are unaffected by what follows."""
    width = max(len(seq) for seq in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


def read_meta(path: Path) -> dict:
    meta_file = Path(path) / PRM_META_FILE
    return json.loads(meta_file.read_text()) if meta_file.is_file() else {}


class ScalarHeadPRM:
    """Loads a scalar-head model and scores batches of segmented trajectories."""

    kind = "scalar-head"

    def __init__(self, path: str | Path, device: str = "cpu", dtype: str = "float32", batch_size: int = 8, separator: str | None = None):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = Path(path)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=getattr(torch, dtype))
        separator = separator if separator is not None else read_meta(path).get("step_separator", DEFAULT_SEPARATOR)
        self._setup(model, tokenizer, resolve_device(device), batch_size, separator, str(path))

    @classmethod
    def from_model(cls, model, tokenizer, device: str = "cpu", batch_size: int = 8, separator: str = DEFAULT_SEPARATOR) -> ScalarHeadPRM:
        """Wrap an already loaded model (benchmarks, notebooks)."""
        prm = cls.__new__(cls)
        prm._setup(model, tokenizer, resolve_device(device), batch_size, separator, type(model).__name__)
        return prm

    def _setup(self, model, tokenizer, device: torch.device, batch_size: int, separator: str, name: str) -> None:
        if model.config.num_labels != 1:
            raise ValueError(f"{name}: a scalar-head PRM needs num_labels=1, the model has {model.config.num_labels}")
        self.path, self.device, self.batch_size, self.separator = name, device, batch_size, separator
        self.tokenizer = tokenizer
        self.model = model.to(device).eval()
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (tokenizer.eos_token_id or 0)
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"scalar-head:{self.path}"

    def encode(self, messages: Sequence[Message], steps: Sequence[StepSpan]) -> EncodedSteps:
        return encode_steps(self.tokenizer, messages, steps, self.separator)

    @staticmethod
    def num_tokens(encoded: EncodedSteps) -> int:
        return len(encoded.ids)

    def score(self, items: Sequence[EncodedSteps]) -> list[np.ndarray]:
        """s_t for every step of every item; batches of similar length go through together."""
        results: list[np.ndarray | None] = [None] * len(items)
        order = sorted(range(len(items)), key=lambda i: len(items[i].ids))
        with self._lock, torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = [i for i in order[start : start + self.batch_size] if items[i].ends]
                for i in order[start : start + self.batch_size]:
                    if not items[i].ends:
                        results[i] = np.zeros(0)
                if not chunk:
                    continue
                ids, mask = pad_batch([items[i].ids for i in chunk], self.pad_id)
                logits = position_logits(self.model, ids.to(self.device), mask.to(self.device)).cpu()
                for row, i in enumerate(chunk):
                    at_ends = logits[row, torch.tensor(items[i].ends, dtype=torch.long)]
                    results[i] = torch.sigmoid(at_ends.double()).numpy()
        return results  # type: ignore[return-value]

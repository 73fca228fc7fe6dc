"""A PRM that asks a causal LM whether each step is correct.

For step t the judge reads a prompt (the conversation up to the step, the step,
the question) and the next-token distribution at its end:

    s_t = P(positive) / (P(positive) + P(negative))

with `positive`/`negative` single tokens ("+"/"-" by default). One prompt per
step, batched (right-padded: a causal model's outputs at real positions do not
depend on padding that follows them).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from outrider.services.reward.prm.encoding import context_line
from outrider.services.reward.prm.scalar_head import pad_batch, resolve_device
from outrider.proto.chat import Message
from outrider.services.reward.prm.segmentation import StepSpan


@dataclass(frozen=True)
class JudgePrompts:
    """Token ids of one judge prompt per step."""

    prompts: list[list[int]]


def judge_texts(messages: Sequence[Message], steps: Sequence[StepSpan], template: str, positive: str, negative: str) -> list[str]:
    """The judge prompt of every step."""
    texts = []
    for step in steps:
        before = "".join(context_line(m) for m in messages[: step.message_index])
        message = messages[step.message_index]
        context = before + f"{message.role}: {message.content[: step.char_start]}"
        step_text = message.content[step.char_start : step.char_end]
        texts.append(template.format(context=context, step=step_text, positive=positive, negative=negative))
    return texts


def single_token(tokenizer, text: str) -> int:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ValueError(f"judge answer {text!r} must be one token, it is {len(ids)}: {ids}")
    return ids[0]


class LMJudgePRM:
    kind = "lm-judge"

    def __init__(self, path: str | Path, cfg, device: str = "cpu"):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.path = Path(path)
        self.cfg = cfg
        self.device = resolve_device(device)
        self.batch_size = cfg.batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        self.model = AutoModelForCausalLM.from_pretrained(str(self.path), dtype=getattr(torch, cfg.dtype)).to(self.device).eval()
        self.positive_id = single_token(self.tokenizer, cfg.positive)
        self.negative_id = single_token(self.tokenizer, cfg.negative)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (self.tokenizer.eos_token_id or 0)
        self.use_chat = cfg.chat_template and getattr(self.tokenizer, "chat_template", None)
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"judge:{self.path}"

    def prompt_ids(self, text: str) -> list[int]:
        if self.use_chat:
            rendered = self.tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
            return self.tokenizer(rendered, add_special_tokens=False)["input_ids"]
        return self.tokenizer(text)["input_ids"]

    def encode(self, messages: Sequence[Message], steps: Sequence[StepSpan]) -> JudgePrompts:
        texts = judge_texts(messages, steps, self.cfg.template, self.cfg.positive, self.cfg.negative)
        return JudgePrompts([self.prompt_ids(text) for text in texts])

    @staticmethod
    def num_tokens(encoded: JudgePrompts) -> int:
        return max((len(p) for p in encoded.prompts), default=0)

    def score(self, items: Sequence[JudgePrompts]) -> list[np.ndarray]:
        flat = [(i, prompt) for i, item in enumerate(items) for prompt in item.prompts]
        order = sorted(range(len(flat)), key=lambda k: len(flat[k][1]))
        scores = np.zeros(len(flat))
        with self._lock, torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                ids, mask = pad_batch([flat[k][1] for k in chunk], self.pad_id)
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
                last = mask.sum(dim=1) - 1
                final = logits[torch.arange(len(chunk)), last.to(self.device)].double()
                pair = torch.stack([final[:, self.positive_id], final[:, self.negative_id]], dim=1)
                scores[chunk] = torch.softmax(pair, dim=1)[:, 0].cpu().numpy()
        results, offset = [], 0
        for item in items:
            results.append(scores[offset : offset + len(item.prompts)].copy())
            offset += len(item.prompts)
        return results

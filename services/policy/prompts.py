"""Tokenizer and chat template of the served model: prompts in, exact token ids out.

The service renders every prompt itself (chat template, then tokenization) and
hands the backend token ids only, so the ids a response reports as its prompt
are the ids the completion is conditioned on, whichever backend serves.
"""

from __future__ import annotations

import json
from pathlib import Path

from outrider.proto.chat import ROLES, Message
from outrider.serving import FailedPrecondition, InvalidArgument


class PromptRenderer:
    """Wraps the HF tokenizer stored in the model folder."""

    def __init__(self, model_dir: Path):
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        config = json.loads((model_dir / "config.json").read_text())
        self.vocab_size = int(config.get("vocab_size") or len(self.tokenizer))
        self.eos_token_ids = _eos_ids(model_dir, config, self.tokenizer)

    def tokenize(self, text: str, add_special_tokens: bool) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def detokenize(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def render_chat(self, messages: list[Message], add_generation_prompt: bool, where: str) -> tuple[list[int], str]:
        """The chat template's text and its token ids (tokenized without extra special tokens:
        the template writes them itself)."""
        if not self.tokenizer.chat_template:
            raise FailedPrecondition("the served model has no chat template; send token_ids or text prompts")
        where = f"{where}." if where else ""
        if not messages:
            raise InvalidArgument(f"{where}messages: empty conversation")
        rendered = []
        for i, message in enumerate(messages):
            if message.role not in ROLES:
                raise InvalidArgument(f"{where}messages[{i}].role: {message.role!r} is not one of {', '.join(ROLES)}")
            rendered.append(message.template_entry())
        try:
            text = self.tokenizer.apply_chat_template(rendered, tokenize=False, add_generation_prompt=add_generation_prompt)
        except Exception as exc:  # the template itself raised (jinja `raise_exception`): the input is at fault
            raise InvalidArgument(f"{where}messages: the chat template rejected the conversation: {exc}") from None
        return self.tokenize(text, add_special_tokens=False), text

    def check_ids(self, ids: list[int], where: str) -> None:
        for i, token in enumerate(ids):
            if not 0 <= token < self.vocab_size:
                raise InvalidArgument(f"{where}[{i}]: token id {token} is outside the vocabulary [0, {self.vocab_size})")


def _eos_ids(model_dir: Path, config: dict, tokenizer) -> tuple[int, ...]:
    """End-of-sequence ids: generation_config.json's, else config.json's, plus the tokenizer's."""
    ids: list[int] = []
    generation = model_dir / "generation_config.json"
    sources = [json.loads(generation.read_text()).get("eos_token_id")] if generation.is_file() else []
    sources += [config.get("eos_token_id"), tokenizer.eos_token_id]
    for value in sources:
        for token in value if isinstance(value, list) else [value]:
            if isinstance(token, int) and token not in ids:
                ids.append(token)
    return tuple(ids)

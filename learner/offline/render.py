"""Chat conversations to token ids and a loss mask that covers what the policy would write.

In an RL episode the trained tokens are exactly the completion the policy sampled after
the chat template's assistant header: the message's content and the end-of-turn token it
stopped on (SmolLM2: ``<|im_end|>``), but not what the template writes after that token
("\\n") or before the content (the header). Offline training uses the same mask, so SFT
and DPO push on the tokens that sampling produces.

For each assistant message i the template renders

    prefix_i = template(messages[:i], add_generation_prompt=True)
    full     = template(messages)            with full[len(prefix_i):] starting with content_i

and the trained span is content_i plus the end-of-turn text when the template closes an
assistant message with it. The text is cut at the span boundaries and each piece is
tokenized on its own (no special tokens added: the template writes them), so a trained
token never straddles a boundary: prompt pieces tokenize as the policy service tokenizes
a rendered prompt, and the content as a completion the policy could have sampled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

_PLACEHOLDER = "PLACEHOLDER-7f3a"


class RenderError(ValueError):
    """The conversation (or the model's chat template) cannot be rendered with an assistant mask."""


@dataclass(frozen=True)
class Tokenized:
    """One sequence and its loss mask. Shape: two lists of length L."""

    token_ids: list[int]
    mask: list[bool]
    """True on trained tokens (assistant content and its end-of-turn token)."""

    @property
    def trained(self) -> int:
        return sum(self.mask)


class ChatRenderer:
    """Renders message lists ({"role", "content"} dicts) with a tokenizer's chat template."""

    def __init__(self, tokenizer):
        if not getattr(tokenizer, "chat_template", None):
            raise RenderError("the model's tokenizer has no chat template; use token-id data (trajectories)")
        self.tokenizer = tokenizer
        probe = self._template([{"role": "user", "content": "PING"}, {"role": "assistant", "content": _PLACEHOLDER}], False)
        if _PLACEHOLDER not in probe:
            raise RenderError("the chat template drops assistant content")
        closing = probe[probe.rindex(_PLACEHOLDER) + len(_PLACEHOLDER) :]
        eos = tokenizer.eos_token or ""
        # The end-of-turn token is what sampling stops on; it is trained, what follows is not.
        self.end_of_turn = eos if eos and closing.startswith(eos) else ""

    def _template(self, messages: Sequence[dict], add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)

    def spans(self, messages: Sequence[dict], train_from: int = 0) -> tuple[str, list[tuple[int, int]]]:
        """The rendered text and the character spans [start, end) of the trained parts: the
        assistant messages at index ≥ ``train_from``."""
        try:
            text = self._template(messages, False)
        except Exception as exc:  # the template itself raised (jinja raise_exception): the data is at fault
            raise RenderError(f"the chat template rejected the conversation: {exc}") from None
        spans = []
        for i, message in enumerate(messages):
            if i < train_from or message["role"] != "assistant":
                continue
            prefix = self._template(messages[:i], True)
            content = message["content"]
            if not text.startswith(prefix) or not text[len(prefix) :].startswith(content):
                raise RenderError(
                    f"messages[{i}]: the chat template does not render this conversation incrementally "
                    "(the assistant message does not follow the rendering of the messages before it)"
                )
            start = len(prefix)
            end = start + len(content)
            if self.end_of_turn and text.startswith(self.end_of_turn, end):
                end += len(self.end_of_turn)
            spans.append((start, end))
        return text, spans

    def render(self, messages: Sequence[dict], train_from: int = 0) -> Tokenized:
        """Token ids of the whole conversation and the mask of its trained spans."""
        text, spans = self.spans(messages, train_from)
        ids: list[int] = []
        mask: list[bool] = []
        cursor = 0
        for start, end in spans:
            for piece, trained in ((text[cursor:start], False), (text[start:end], True)):
                if piece:
                    tokens = self.tokenizer(piece, add_special_tokens=False)["input_ids"]
                    ids += tokens
                    mask += [trained] * len(tokens)
            cursor = end
        if cursor < len(text):
            tokens = self.tokenizer(text[cursor:], add_special_tokens=False)["input_ids"]
            ids += tokens
            mask += [False] * len(tokens)
        return Tokenized(ids, mask)

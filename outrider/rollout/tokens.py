"""Token ids for environment messages, without re-tokenizing what the policy wrote.

A multi-turn episode is one growing token sequence. The policy's completion
tokens are appended exactly as sampled. What the environment says next must
be appended as the tokens the chat template would have produced *after* an
assistant message — but rendering the whole conversation again would
re-tokenize the completion, which may not give back the sampled ids.

So the environment part is rendered against a placeholder conversation:

    base = template([user: PING, assistant: PLACEHOLDER])
    full = template([user: PING, assistant: PLACEHOLDER, *new_messages], add_generation_prompt)
    observation = closing + full[len(base):]

where `closing` is what the template puts after an assistant message's content
(SmolLM2: "<|im_end|>\\n"). If the completion already ended with the
end-of-turn token, that part of `closing` is not repeated.
"""

from __future__ import annotations

from collections.abc import Sequence

from outrider.proto.v1.common_pb2 import ChatMessage, Conversation

_PING = ChatMessage(role="user", content="PING")
_PLACEHOLDER = "PLACEHOLDER-7f3a"


class TemplateError(ValueError):
    """The chat template does not render conversations incrementally."""


class ObservationTokens:
    """Renders environment messages as the token ids that follow a completion."""

    def __init__(self, policy):
        self.policy = policy
        base = self._render([_PING, ChatMessage(role="assistant", content=_PLACEHOLDER)], False)
        if _PLACEHOLDER not in base:
            raise TemplateError("the chat template drops assistant content; cannot build multi-turn episodes")
        self.base = base
        self.closing = base[base.rindex(_PLACEHOLDER) + len(_PLACEHOLDER) :]
        self._end_of_turn_texts: dict[int, str] = {}

    def _render(self, messages: Sequence[ChatMessage], add_generation_prompt: bool) -> str:
        conversation = Conversation(messages=list(messages), add_generation_prompt=add_generation_prompt)
        return self.policy.apply_chat_template([conversation]).texts[0]

    def _token_text(self, token_id: int) -> str:
        if token_id not in self._end_of_turn_texts:
            self._end_of_turn_texts[token_id] = self.policy.detokenize([[token_id]], skip_special_tokens=False)[0]
        return self._end_of_turn_texts[token_id]

    def after_completion(self, end_token: int | None, messages: Sequence[ChatMessage]) -> list[int]:
        """Token ids to append after a completion, for the environment's
        `messages`, up to the next assistant header. `end_token` is the
        end-of-sequence token the completion stopped on (None when it was cut
        off by max_tokens or ended on a stop string)."""
        return self.after_completions([(end_token, messages)])[0]

    def after_completions(self, items: Sequence[tuple[int | None, Sequence[ChatMessage]]]) -> list[list[int]]:
        """:meth:`after_completion` for several episodes in two policy calls in all (one
        ApplyChatTemplate, one Tokenize), not two per episode: a group's episodes reach
        the environment's reply together, and each call is a round trip per turn."""
        if not items:
            return []
        conversations = [
            Conversation(
                messages=[_PING, ChatMessage(role="assistant", content=_PLACEHOLDER), *messages],
                add_generation_prompt=True,
            )
            for _, messages in items
        ]
        rendered = self.policy.apply_chat_template(conversations).texts
        texts = []
        for (end_token, _), full in zip(items, rendered, strict=True):
            if not full.startswith(self.base):
                raise TemplateError("the chat template re-renders earlier turns; cannot append environment messages")
            closing = self.closing
            if end_token is not None:
                end = self._token_text(end_token)
                if end and closing.startswith(end):
                    closing = closing[len(end) :]
            texts.append(closing + full[len(self.base) :])
        wanted = [text for text in texts if text]
        tokens = iter(self.policy.tokenize(wanted, add_special_tokens=False) if wanted else [])
        return [list(next(tokens)) if text else [] for text in texts]

"""Captured sessions of the OpenAI API: an agent's calls, token for token (docs/agents.md).

A rollout opens a session (`outrider.transport.capture.CaptureStore.open`) and gives the
agent program the base URL `http://<policy>/sessions/<id>/v1`. Every chat call under it is
served like a plain `/v1/chat/completions` call, with two differences:

* **The prompt reuses the tokens the model already saw.** An agent sends its whole
  history each time; re-rendering it would re-tokenize the text the model wrote, and a
  text can have more than one tokenization (or, for tool calls, be re-formatted by the
  template), so the learner would train on tokens the model never sampled. When the
  request's messages are the previous call's messages followed by that call's reply
  (recognised by its text and tool-call ids), the prompt is spliced:

      prompt_n = prompt_{n-1} + completion_{n-1} + tokens(closing + rendering of the new messages)

  where `closing` is what the chat template writes after the reply's end-of-turn token
  (e.g. "\\n" after "<|im_end|>"), or the end-of-turn itself when the completion did not
  sample one (cut at max_tokens or by a stop string). Any other history (summarised,
  truncated, edited) is rendered from the messages alone; assembly then starts a new
  sequence of the episode there (`outrider.rollout.assembly`).
* **Every call is recorded** as a `CapturedCall` in Redis before it is answered, so a
  crashed agent loses none of the calls it made.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass, field

import redis

from outrider.config.policy import CaptureConfig
from outrider.proto.v1.agent_pb2 import CapturedCall
from outrider.proto.v1.common_pb2 import FinishReason
from outrider.serving import FailedPrecondition, InvalidArgument, NotFound
from outrider.transport.capture import SESSION_ID_RE, CaptureStore, SessionClosed, SessionUnknown

_FINISH = {"stop": FinishReason.FINISH_REASON_STOP, "length": FinishReason.FINISH_REASON_LENGTH,
           "abort": FinishReason.FINISH_REASON_ABORT}


class SessionGone(FailedPrecondition):
    """The session was closed: HTTP 409."""


def messages_digest(entries: list[dict]) -> str:
    """sha256 of the messages as the chat template reads them (canonical JSON)."""
    text = json.dumps(entries, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _is_reply(entry: dict, previous: CapturedCall) -> bool:
    """Whether a history entry is the reply `previous` returned (as the agent sends it back)."""
    if entry.get("role") != "assistant" or entry.get("content", "") != previous.reply_content:
        return False
    ids = [call.get("id", "") for call in entry.get("tool_calls") or ()]
    return ids == list(previous.reply_tool_call_ids)


def splice_prompt(renderer, entries: list[dict], tools: list[dict] | None, previous: CapturedCall) -> list[int] | None:
    """The prompt of a call whose history extends `previous` (module doc), or None when it
    does not: other messages, a reply the agent edited, or a template whose renderings of
    the shorter conversations are not prefixes of the longer one."""
    k = previous.message_count
    if len(entries) <= k or messages_digest(entries[:k]) != previous.messages_digest or not _is_reply(entries[k], previous):
        return None

    def render(messages: list[dict], generation_prompt: bool) -> str:
        return renderer.tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=generation_prompt
        )

    try:
        asked, answered, now = render(entries[:k], True), render(entries[: k + 1], False), render(entries, True)
    except Exception:  # noqa: BLE001 - a template that rejects a shorter conversation: render it whole
        return None
    if not (answered.startswith(asked) and now.startswith(answered)):
        return None
    closing = _closing(renderer, answered[len(asked):], previous)
    if closing is None:
        return None
    added = renderer.tokenize(closing + now[len(answered):], add_special_tokens=False)
    return [*previous.prompt_token_ids, *previous.completion_token_ids, *added]


def _closing(renderer, reply_text: str, previous: CapturedCall) -> str | None:
    """What the template writes after the sampled tokens of the reply (module doc)."""
    completion = previous.completion_token_ids
    if completion and completion[-1] in renderer.eos_token_ids:
        end = renderer.detokenize([completion[-1]], skip_special_tokens=False)
        at = reply_text.rfind(end)
        return reply_text[at + len(end):] if end and at != -1 else None
    end = renderer.tokenizer.eos_token or ""
    at = reply_text.rfind(end) if end else -1
    return reply_text[at:] if at != -1 else None


@dataclass
class SessionCall:
    """One call of a session being served: what `record` needs at the end."""

    session_id: str
    prompt_ids: list[int]
    spliced: bool
    digest: str
    message_count: int
    started_unix: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)


class CapturedSessions:
    """The policy service's side of captured sessions: check, render, record."""

    def __init__(self, cfg: CaptureConfig, renderer):
        if cfg.redis_url is None:
            raise ValueError("CapturedSessions needs capture.redis_url")
        self.renderer = renderer
        self.client = redis.Redis.from_url(cfg.redis_url, socket_timeout=30)
        self.store = CaptureStore(self.client, cfg.prefix, cfg.ttl_s)

    async def check_open(self, session_id: str) -> None:
        state = await asyncio.to_thread(self.store.state, session_id) if SESSION_ID_RE.match(session_id) else None
        if state is None:
            raise NotFound(f"session {session_id[:64]!r}: unknown session (never opened, or expired)")
        if state != "open":
            raise SessionGone(f"session {session_id!r}: the session is closed and takes no more calls")

    async def prompt(self, session_id: str, entries: list[dict], tools: list[dict] | None,
                     rendered: list[int]) -> SessionCall:
        """Check the session is open, then the call's prompt: spliced onto the previous
        call where the history extends it, else `rendered` (the plain rendering)."""
        await self.check_open(session_id)
        previous = await asyncio.to_thread(self.store.last, session_id)
        ids = splice_prompt(self.renderer, entries, tools, previous) if previous is not None else None
        return SessionCall(session_id, ids if ids is not None else rendered, ids is not None,
                           messages_digest(entries), len(entries))

    async def record(self, call: SessionCall, *, token_ids: list[int], logprobs: list[float], version: int,
                     finish_reason: str | None, content: str, tool_call_ids: list[str], sampling, streamed: bool) -> int:
        """Persist the call (before the agent sees its answer); returns its index."""
        record = CapturedCall(
            prompt_token_ids=call.prompt_ids, completion_token_ids=token_ids, completion_logprobs=logprobs,
            policy_version=version, finish_reason=_FINISH.get(finish_reason or "", FinishReason.FINISH_REASON_UNSPECIFIED),
            started_unix=call.started_unix, seconds=time.monotonic() - call.started, spliced=call.spliced,
            reply_content=content, reply_tool_call_ids=tool_call_ids, message_count=call.message_count,
            messages_digest=call.digest, streamed=streamed,
        )
        if sampling is not None:
            record.sampling.CopyFrom(sampling)
        try:
            return await asyncio.to_thread(self.store.append, call.session_id, record)
        except SessionClosed:
            raise SessionGone(f"session {call.session_id!r}: closed while this call was served; it was not recorded") from None
        except SessionUnknown:
            raise NotFound(f"session {call.session_id!r}: expired while this call was served") from None

    def close(self) -> None:
        self.client.close()


def check_request(n: int | None) -> None:
    if n not in (None, 1):
        raise InvalidArgument(
            f"n: a captured session takes one completion per call (got {n}): each call's completion "
            "is the next step of one episode; ask for several episodes instead"
        )

"""Prompts of captured sessions: the previous call's tokens are reused, never re-tokenized.

The tokenizer is tiny-random's (SmolLM2's) with Qwen2.5's chat template; expected token
lists are built here from text written out by hand from that template.
"""

from __future__ import annotations

import shutil

import pytest

from outrider.models import resolve_model
from outrider.models.chat_templates import TOOLS_TEMPLATE
from outrider.proto.v1.agent_pb2 import CapturedCall
from outrider.services.policy.capture import messages_digest, splice_prompt
from outrider.services.policy.prompts import PromptRenderer
from testkit.tool_model import ASK, TOOLS

# The model wrote its call without the spaces Qwen's template puts after ':' and ','.
WRITTEN = '<tool_call>\n{"name":"get_weather","arguments":{"city":"Paris"}}\n</tool_call>'
CALL_ID = "call_abc"
ASSISTANT = {"role": "assistant", "content": "", "tool_calls": [
    {"id": CALL_ID, "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}
RESULT = {"role": "tool", "tool_call_id": CALL_ID, "content": "18 C"}
# What Qwen's template writes after the reply's <|im_end|>, for RESULT, by hand.
AFTER_REPLY = "\n<|im_start|>user\n<tool_response>\n18 C\n</tool_response><|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def renderer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qwen-template")
    source = resolve_model("tiny-random")
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json"):
        shutil.copy(source / name, folder / name)
    (folder / "chat_template.jinja").write_text(TOOLS_TEMPLATE)
    return PromptRenderer(folder)


def ids(renderer, text):
    return renderer.tokenize(text, add_special_tokens=False)


def previous_call(renderer, completion_text, *, end_of_turn=True, content="", tool_call_ids=(CALL_ID,)):
    prompt = renderer.tokenizer.apply_chat_template(ASK, tools=TOOLS, tokenize=False, add_generation_prompt=True)
    completion = ids(renderer, completion_text) + ([renderer.tokenizer.convert_tokens_to_ids("<|im_end|>")] if end_of_turn else [])
    return CapturedCall(prompt_token_ids=ids(renderer, prompt), completion_token_ids=completion,
                        completion_logprobs=[-1.0] * len(completion), reply_content=content,
                        reply_tool_call_ids=list(tool_call_ids), message_count=len(ASK),
                        messages_digest=messages_digest(ASK))


def test_the_next_prompt_is_the_previous_tokens_then_what_the_agent_added(renderer):
    previous = previous_call(renderer, WRITTEN)
    spliced = splice_prompt(renderer, [*ASK, ASSISTANT, RESULT], TOOLS, previous)
    expected = [*previous.prompt_token_ids, *previous.completion_token_ids, *ids(renderer, AFTER_REPLY)]
    assert spliced == expected
    # Rendering the history again would have put the template's spacing in the model's mouth.
    again = renderer.tokenizer.apply_chat_template([*ASK, ASSISTANT, RESULT], tools=TOOLS, tokenize=False,
                                                   add_generation_prompt=True)
    assert '{"name": "get_weather", "arguments": {"city": "Paris"}}' in again
    assert ids(renderer, again) != spliced


def test_a_reply_cut_before_its_end_of_turn_gets_the_templates_end_of_turn(renderer):
    previous = previous_call(renderer, "Let me", end_of_turn=False, content="Let me", tool_call_ids=())
    reply = {"role": "assistant", "content": "Let me"}
    user = {"role": "user", "content": "go on"}
    spliced = splice_prompt(renderer, [*ASK, reply, user], TOOLS, previous)
    added = "<|im_end|>\n<|im_start|>user\ngo on<|im_end|>\n<|im_start|>assistant\n"
    assert spliced == [*previous.prompt_token_ids, *previous.completion_token_ids, *ids(renderer, added)]


@pytest.mark.parametrize("history", [
    pytest.param([*ASK, {**ASSISTANT, "tool_calls": [{**ASSISTANT["tool_calls"][0], "id": "call_other"}]}, RESULT],
                 id="another call id"),
    pytest.param([*ASK, {**ASSISTANT, "content": "I will check."}, RESULT], id="edited reply text"),
    pytest.param([{"role": "user", "content": "Weather in Paris?"}, ASSISTANT, RESULT], id="earlier message changed"),
    pytest.param([*ASK], id="no reply in the history"),
    pytest.param([ASSISTANT, RESULT], id="history truncated"),
])
def test_a_history_that_does_not_extend_the_previous_call_is_not_spliced(renderer, history):
    assert splice_prompt(renderer, history, TOOLS, previous_call(renderer, WRITTEN)) is None

"""A tiny model that writes a known tool call: tiny-random with Qwen2.5's chat template
(tools in a system block, calls as `<tool_call>` JSON: the `hermes` format), trained here
until greedy decoding after ASK writes REPLY. Tests of what the policy service does with
a real sampled tool call (function calling, captured agent sessions) share it.
"""

from __future__ import annotations

from pathlib import Path

from outrider.models import resolve_model
from outrider.models.chat_templates import copy_with_tools_template
from testkit.policy import memorizing_checkpoint


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}}]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
# What the model is trained to write after ASK (Qwen's format), and the call it means.
REPLY = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
CALL = ("get_weather", {"city": "Paris"})
MODEL = "tiny-qwen-tools"


def build_tool_model(tmp_path_factory) -> Path:
    """tiny-random with Qwen2.5's template, trained to answer ASK with REPLY."""
    from transformers import AutoTokenizer

    source = copy_with_tools_template(resolve_model("tiny-random"), tmp_path_factory.mktemp("template") / "tiny")
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    prompt = tokenizer.apply_chat_template(ASK, tools=TOOLS, tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    reply_ids = tokenizer(REPLY, add_special_tokens=False)["input_ids"] + [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    target = tmp_path_factory.mktemp("trained") / "tiny-qwen-tools"
    memorizing_checkpoint(source, target, prompt_ids, reply_ids)
    return target

"""A tiny model that writes a known tool call: tiny-random with Qwen2.5's chat template
(tools in a system block, calls as `<tool_call>` JSON: the `hermes` format), trained here
until greedy decoding after ASK writes REPLY. Tests of what the policy service does with
a real sampled tool call (function calling, captured agent sessions) share it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from outrider.models import resolve_model
from testkit.policy import memorizing_checkpoint

# Qwen2.5-Instruct's chat template (tool parts verbatim), with SmolLM2's special tokens.
QWEN25_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

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

    source = tmp_path_factory.mktemp("template") / "tiny"
    shutil.copytree(resolve_model("tiny-random"), source, ignore=shutil.ignore_patterns(".outrider-*"))
    (source / "chat_template.jinja").write_text(QWEN25_TEMPLATE)
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    prompt = tokenizer.apply_chat_template(ASK, tools=TOOLS, tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    reply_ids = tokenizer(REPLY, add_special_tokens=False)["input_ids"] + [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    target = tmp_path_factory.mktemp("trained") / "tiny-qwen-tools"
    memorizing_checkpoint(source, target, prompt_ids, reply_ids)
    return target

"""A copy of a model whose chat template renders tools, so that an agent's `tools` reach it.

    python examples/agents/calculator/add_tool_template.py MODEL OUT

SmolLM2-135M-Instruct's own chat template ignores `tools`, and the policy refuses a
request with tools that its model's template cannot render (it could not parse the calls
either). This writes MODEL (a built-in name or an HF folder) to the folder OUT with
Qwen2.5-Instruct's template (outrider.models.chat_templates.TOOLS_TEMPLATE): the tools in
the system block, calls as `<tool_call>` JSON (the `hermes` format the policy parses),
tool results as `<tool_response>` user turns. The weights are
the same; the model has never seen this format, so it mostly answers directly
(examples/grpo-calculator-agent.yaml says what it measured). Idempotent: an existing OUT
is replaced.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from outrider.models import resolve_model
from outrider.models.chat_templates import copy_with_tools_template


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a built-in model name (smollm2-135m-instruct, tiny-random) or an HF folder")
    parser.add_argument("out", type=Path, help="the folder to write")
    args = parser.parse_args(argv)
    copy_with_tools_template(resolve_model(args.model), args.out)
    print(f"{args.out}: {args.model} with a tool-rendering chat template")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

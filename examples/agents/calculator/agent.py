"""A calculator agent written the way agents are written: the official `openai` client,
one tool, a loop. Nothing in it knows about Outrider; trained as it is (docs/agents.md).

Outrider runs it in the sandbox with OPENAI_BASE_URL pointing at a captured session of
the policy, OUTRIDER_PROMPT holding the task, and OUTRIDER_MODEL the served model's
name. Its last line of output is its final answer.
"""

import ast
import json
import operator
import os

from openai import OpenAI

TOOLS = [{"type": "function", "function": {
    "name": "calculate",
    "description": "Evaluate an arithmetic expression with + - * / ** and parentheses.",
    "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
}}]
SYSTEM = ("Solve the problem. You may call the calculate tool for arithmetic. "
          "When you know the answer, reply with: Answer: <number>")
MAX_CALLS = int(os.environ.get("AGENT_MAX_CALLS", "4"))
MAX_TOKENS = int(os.environ.get("AGENT_MAX_TOKENS", "128"))
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos}


def calculate(expression: str) -> str:
    """The value of an arithmetic expression, or why there is none (never eval)."""
    def value(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 64:
                raise ValueError("exponent too large")
            return _OPERATORS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.operand))
        raise ValueError(f"unsupported: {ast.dump(node)[:40]}")
    try:
        return str(value(ast.parse(expression, mode="eval").body))
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError) as exc:
        return f"error: {exc}"


def main() -> None:
    client = OpenAI()
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": os.environ["OUTRIDER_PROMPT"]}]
    answer = ""
    for _ in range(MAX_CALLS):
        reply = client.chat.completions.create(model=os.environ.get("OUTRIDER_MODEL", ""), messages=messages,
                                               tools=TOOLS, max_tokens=MAX_TOKENS, temperature=1.0)
        message = reply.choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        answer = message.content or ""
        if not message.tool_calls:
            break
        for call in message.tool_calls:
            try:
                expression = json.loads(call.function.arguments).get("expression", "")
            except (json.JSONDecodeError, AttributeError):
                expression = ""
            messages.append({"role": "tool", "tool_call_id": call.id, "content": calculate(str(expression))})
    print(answer)


if __name__ == "__main__":
    main()

"""Built-in environments: math, code, python-tool, guess-number.

Each class has `default_spec()`, the EnvSpec it is registered with; the env
service registers those named in its config (`builtin_envs`) at start.
"""

from __future__ import annotations

import importlib

BUILTIN_ENTRY_POINTS: dict[str, str] = {
    "math": "outrider.envs.builtin.math_env:MathEnv",
    "code": "outrider.envs.builtin.code_env:CodeEnv",
    "python-tool": "outrider.envs.builtin.python_tool_env:PythonToolEnv",
    "guess-number": "outrider.envs.builtin.guess_number_env:GuessNumberEnv",
}


def builtin_class(name: str):
    if name not in BUILTIN_ENTRY_POINTS:
        raise KeyError(f"unknown built-in environment {name!r}; valid: {', '.join(BUILTIN_ENTRY_POINTS)}")
    module, _, attribute = BUILTIN_ENTRY_POINTS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)

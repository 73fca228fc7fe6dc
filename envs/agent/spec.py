"""What an EnvSpec of kind `agent` must say (called by outrider.envs.spec)."""

from __future__ import annotations

import os
import re

from outrider.proto.v1 import env_pb2

_VARIABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Set by the env service for every run; a spec may not override them.
RESERVED_VARIABLES = frozenset({"OPENAI_BASE_URL", "OPENAI_API_KEY", "OUTRIDER_MODEL", "OUTRIDER_TASK",
                                "OUTRIDER_PROMPT", "PYTHONPATH", "PATH", "HOME", "TMPDIR"})
MAX_WORDS = 256
MAX_TEXT = 4096


def agent_problems(spec: env_pb2.EnvSpec, name_re: re.Pattern) -> list[tuple[str, str]]:
    agent = spec.agent
    problems = []
    if not agent.command:
        problems.append(("agent.command", "is empty; give the program's command line, e.g. [python3, /agent/main.py]"))
    if len(agent.command) > MAX_WORDS:
        problems.append(("agent.command", f"more than {MAX_WORDS} words"))
    for i, word in enumerate(agent.command):
        if not word or len(word) > MAX_TEXT or "\0" in word:
            problems.append((f"agent.command[{i}]", "must be 1-4096 characters without NUL"))
    if agent.directory:
        if not os.path.isabs(agent.directory):
            problems.append(("agent.directory", f"{agent.directory!r} must be an absolute path (it is mounted at /agent)"))
        elif not os.path.isdir(agent.directory):
            problems.append(("agent.directory", f"{agent.directory!r} is not a folder on the env service's host"))
        elif (closed := _closed_to_others(agent.directory)) is not None:
            problems.append(("agent.directory", f"{closed!r} is not readable by other users, and the agent runs as "
                                                "an unprivileged user of its own: chmod o+rx it (and o+x its parents)"))
    if not name_re.match(agent.tasks_from):
        problems.append(("agent.tasks_from", f"{agent.tasks_from!r} must name the environment whose tasks the agent "
                                             "plays and whose Step verifies its answer"))
    elif agent.tasks_from == spec.name:
        problems.append(("agent.tasks_from", "names this environment itself; name a `python` environment"))
    for key, value in agent.env.items():
        if not _VARIABLE_RE.match(key):
            problems.append((f"agent.env.{key}", "is not a variable name (letters, digits, '_')"))
        elif key in RESERVED_VARIABLES:
            problems.append((f"agent.env.{key}", "is set by the env service for every run"))
        if len(value) > MAX_TEXT or "\0" in value:
            problems.append((f"agent.env.{key}", "must be at most 4096 characters without NUL"))
    return problems


def _closed_to_others(directory: str) -> str | None:
    """The first folder on the way to `directory` that other users cannot enter (or, for
    `directory` itself, list); None when the sandbox's own uid can read it."""
    path = os.path.realpath(directory)
    for folder, needed in [(path, 0o005), *((parent, 0o001) for parent in _parents(path))]:
        if os.stat(folder).st_mode & needed != needed:
            return folder
    return None


def _parents(path: str) -> list[str]:
    parents = []
    while (parent := os.path.dirname(path)) != path:
        parents.append(parent)
        path = parent
    return parents


def agent_unapplied(spec: env_pb2.EnvSpec) -> list[tuple[str, str]]:
    problems = []
    if spec.tools:
        problems.append(("tools", "an agent program brings its own tools (it sends them in its chat calls); remove them"))
    if spec.params:
        problems.append(("params", "an agent program is not constructed by the env service; use agent.env for its settings"))
    return problems

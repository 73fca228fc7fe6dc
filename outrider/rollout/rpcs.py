"""Counting the round trips a rollout makes.

Every RPC on the rollout path is paid G × turns × workers times, so the
rollout worker wraps each service client it uses in `Counted` and reports the
counts per group (rollouts.jsonl, `rpcs`), as "service/Rpc": one count per call
of a client method that makes one RPC, whether it succeeds or fails.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

RPC_METHODS: dict[str, dict[str, str]] = {
    "policy": {
        "generate": "Generate",
        "generate_stream": "GenerateStream",
        "apply_chat_template": "ApplyChatTemplate",
        "tokenize": "Tokenize",
        "detokenize": "Detokenize",
        "score_tokens": "ScoreTokens",
        "info": "GetInfo",
    },
    "env": {
        "create_session": "CreateSession",
        "step": "Step",
        "close_session": "CloseSession",
        "list_tasks": "ListTasks",
        "count_tasks": "ListTasks",
        "list_envs": "ListEnvs",
        "run_agent": "RunAgent",
    },
    "reward": {"score": "Score", "score_steps": "ScoreSteps", "info": "GetInfo"},
    "curriculum": {
        "next_tasks": "NextTasks",
        "report": "ReportOutcomes",
        "report_many": "ReportOutcomes",
        "state": "GetState",
    },
}
"""Client method -> the RPC it makes, per service (services/<name>/client.py)."""


class Counted:
    """`client` with every RPC method counted into `counts` as "service/Rpc";
    everything else passes through unchanged. `progress("service/Rpc")`, when given, is
    called as each call ends, answered or failed (the rollout worker's watchdog beat: a
    call that ends, even with DEADLINE_EXCEEDED, is progress)."""

    def __init__(self, client, service: str, counts: Counter, progress: Callable[[str], None] | None = None):
        self._client = client
        self._service = service
        self._methods = RPC_METHODS[service]
        self._counts = counts
        self._progress = progress

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        rpc = self._methods.get(name)
        if rpc is None:
            return attribute
        return _counting(attribute, f"{self._service}/{rpc}", self._counts, self._progress)


def _counting(method: Callable, key: str, counts: Counter, progress: Callable[[str], None] | None) -> Callable:
    def call(*args, **kwargs):
        counts[key] += 1
        try:
            return method(*args, **kwargs)
        finally:
            if progress is not None:
                progress(key)

    return call

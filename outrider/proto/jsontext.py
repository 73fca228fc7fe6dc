"""JSON text that arrives inside messages (tool-call arguments, actions, specs, replies).

Python's parser follows nesting by recursion: `"[" * 100_000` raises RecursionError, not
`json.JSONDecodeError`, and a handler that only expects the latter answers INTERNAL (or
HTTP 500) for what is the sender's bad input. `loads` raises JSONDecodeError for both,
so every caller's existing `except json.JSONDecodeError` names the field as for any
other invalid JSON. One place, so no parser of client text forgets the second case.
"""

from __future__ import annotations

import json
from typing import Any

TOO_DEEP = "nested too deeply to parse"
"""The JSONDecodeError message (its `msg`) for a document past the parser's recursion limit."""


def loads(text: str | bytes | bytearray) -> Any:
    """`json.loads(text)`; JSONDecodeError also for a document nested past the recursion limit."""
    try:
        return json.loads(text)
    except RecursionError:
        # An empty `doc`: the exception keeps no copy of a (possibly huge) document.
        raise json.JSONDecodeError(TOO_DEEP, "", 0) from None


_DECODER = json.JSONDecoder()


def raw_decode(text: str, index: int = 0) -> tuple[Any, int]:
    """`json.JSONDecoder().raw_decode(text, index)` (one document from `index`, and where it
    ends); JSONDecodeError also for a document nested past the recursion limit."""
    try:
        return _DECODER.raw_decode(text, index)
    except RecursionError:
        raise json.JSONDecodeError(TOO_DEEP, "", 0) from None

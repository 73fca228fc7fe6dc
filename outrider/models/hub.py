"""Models named by Hugging Face Hub id (`Qwen/Qwen2.5-0.5B-Instruct`, `org/name@revision`).

Resolved through the standard Hub cache, the one transformers, vLLM and
`huggingface-cli download` share: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
`~/.cache/huggingface/hub` (read when a model is resolved, not at import, so a
process can point it elsewhere). A snapshot already in the cache is used without any
network request; otherwise it is downloaded — unless `HF_HUB_OFFLINE` is set, and
then the error says what was looked for and how to get it. Only what serving and
training need is downloaded (config, tokenizer, chat template, safetensors weights).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[\w./-]+))?$")
"""`owner/name` with an optional `@revision` (branch, tag or commit)."""

DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
"""Files of a snapshot a run needs (no .bin/.pt/.h5/.msgpack/.onnx duplicates of the weights)."""


def is_hub_id(spec: str) -> bool:
    return HUB_ID.match(spec) is not None


def hub_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "huggingface"
    return Path(home).expanduser() / "hub"


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def cached_snapshot(spec: str) -> Path | None:
    """The cached snapshot of a hub id (no network), or None."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo, revision = _split(spec)
    try:
        folder = Path(snapshot_download(repo, revision=revision, cache_dir=hub_cache_dir(), local_files_only=True))
    except LocalEntryNotFoundError:
        return None
    return folder if (folder / "config.json").is_file() else None


def resolve_hub(spec: str, tried: list[str]) -> Path:
    """The snapshot folder of a hub id: from the cache, else downloaded (when online).

    `tried` holds what the caller already looked at; the ModelNotFound raised when
    nothing works lists it with what this function tried.
    """
    from outrider.models import ModelNotFound

    repo, revision = _split(spec)
    cache = hub_cache_dir()
    label = f"{repo}@{revision or 'main'}"
    if (folder := cached_snapshot(spec)) is not None:
        return folder
    tried = [*tried, f"the Hugging Face cache {cache}: no complete snapshot of {label}"]
    how = (f"to get it: `huggingface-cli download {repo}" + (f" --revision {revision}" if revision else "")
           + f"` on a machine with network (with HF_HUB_CACHE={cache}, or copy the cache here), or a local folder")
    if hub_offline():
        tried.append("the Hub: not asked (HF_HUB_OFFLINE is set)")
        raise ModelNotFound(f"model {spec!r} not found; tried " + "; ".join(tried) + f". {how}")
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo, revision=revision, cache_dir=cache, allow_patterns=DOWNLOAD_PATTERNS))
    except Exception as exc:  # noqa: BLE001 - every failure is reported with what was tried
        tried.append(f"downloading from the Hub: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        raise ModelNotFound(f"model {spec!r} not found; tried " + "; ".join(tried) + f". {how}") from exc
    if not (folder / "config.json").is_file():
        raise ModelNotFound(f"model {spec!r}: the Hub snapshot {folder} has no config.json (not a transformers model)")
    return folder


def _split(spec: str) -> tuple[str, str | None]:
    match = HUB_ID.match(spec)
    if match is None:
        raise ValueError(f"{spec!r} is not a Hugging Face Hub id (owner/name[@revision])")
    return match["repo"], match["revision"]

"""Models the platform serves: built-in names, local HF folders, Hugging Face Hub ids.

`resolve_model(spec)` turns a config's `model` value into an HF folder, trying in
order: a built-in name (`smollm2-135m-instruct`, `tiny-random`), materialized once
into the cache (`$OUTRIDER_CACHE/models`, default `~/.cache/outrider/models`) with
no download; a local folder with a `config.json`; a Hub id (`owner/name[@revision]`,
`outrider.models.hub`): the snapshot in the standard Hugging Face cache, downloaded
first when it is not there and `HF_HUB_OFFLINE` is not set.
"""

from __future__ import annotations

from pathlib import Path

from outrider.models.builtin import BUILD_REVISION, BUILTIN_MODELS
from outrider.models.cache import build_once, cache_root, is_complete, models_dir


class ModelNotFound(ValueError):
    """The model spec is neither a built-in name nor a local HF folder."""


def builtin_path(name: str) -> Path:
    """Where a built-in model lives in the cache (whether or not it is built)."""
    return models_dir() / f"{name}-r{BUILD_REVISION}"


def materialize(name: str) -> Path:
    """Build a built-in model into the cache if needed; return its folder."""
    if name not in BUILTIN_MODELS:
        raise ModelNotFound(f"unknown built-in model {name!r}; built-in: {', '.join(builtin_names())}")
    builder = BUILTIN_MODELS[name]
    return build_once(builtin_path(name), lambda out: builder(out, materialize))


def builtin_names() -> list[str]:
    """Names a config may use for `model` (the tokenizer-only entry is internal)."""
    return [name for name in BUILTIN_MODELS if not name.endswith("-tokenizer")]


def resolve_model(spec: str) -> Path:
    """A built-in model name, a local HF folder or a Hub id -> the folder to load."""
    from outrider.models.hub import is_hub_id, resolve_hub

    if spec in BUILTIN_MODELS:
        return materialize(spec)
    folder = Path(spec).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ModelNotFound(f"{folder} is a folder but has no config.json (not an HF model folder)")
        return folder.resolve()
    tried = [f"built-in models ({', '.join(builtin_names())})", f"a local folder {spec!r}: does not exist"]
    if is_hub_id(spec):
        return resolve_hub(spec, tried)
    raise ModelNotFound(
        f"model {spec!r} is neither a built-in model ({', '.join(builtin_names())}), nor an existing local folder, "
        "nor a Hugging Face Hub id (owner/name[@revision])"
    )


__all__ = [
    "BUILTIN_MODELS",
    "ModelNotFound",
    "builtin_names",
    "builtin_path",
    "cache_root",
    "is_complete",
    "materialize",
    "resolve_model",
]

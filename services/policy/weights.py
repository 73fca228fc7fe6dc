"""Weights updates: HF checkpoint folders, staged safetensors files and streamed `TensorChunk`s, checked before loading.

An update must name exactly the tensors of the served model's checkpoint with
the same shapes (dtypes may differ: they are cast on load). A tied output
embedding (`lm_head.weight` when `tie_word_embeddings`) is accepted and
dropped, since `state_dict()` of a tied HF model lists it while its
checkpoint does not. Anything else is refused with INVALID_ARGUMENT before a
single weight changes, so a bad push never leaves a half-updated model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from outrider.models.tensors import DTYPES
from outrider.proto.v1 import common_pb2
from outrider.serving import InvalidArgument, NotFound

TIED_OUTPUT = "lm_head.weight"


def _weight_files(folder: Path) -> tuple[list[Path], str]:
    files = sorted(folder.glob("*.safetensors"))
    if files:
        return files, "safetensors"
    files = sorted(p for p in folder.glob("*.bin") if p.name != "training_args.bin")
    if files:
        return files, "bin"
    raise InvalidArgument(f"checkpoint_path: {folder} holds no *.safetensors or *.bin weight files")


def safetensors_files(folder: Path) -> list[Path]:
    """The folder's `*.safetensors` files (empty when its weights are `*.bin`)."""
    files, kind = _weight_files(folder)
    return files if kind == "safetensors" else []


def file_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of one safetensors file, from its header only."""
    try:
        with safe_open(str(file), "pt") as handle:
            return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a bad file
        raise InvalidArgument(f"{file}: not a readable safetensors file ({exc})") from None


def read_file(file: Path) -> dict[str, torch.Tensor]:
    """Every tensor of one safetensors file, on CPU."""
    with safe_open(str(file), "pt") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}


def checkpoint_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of an HF checkpoint folder, without loading the data."""
    files, kind = _weight_files(folder)
    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        if kind == "safetensors":
            shapes.update(file_shapes(file))
        else:
            state = torch.load(file, map_location="meta", weights_only=True)
            shapes.update({name: tuple(t.shape) for name, t in state.items()})
    return shapes


def read_checkpoint(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of an HF checkpoint folder, on CPU."""
    files, kind = _weight_files(folder)
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        if kind == "safetensors":
            tensors.update(read_file(file))
        else:
            tensors.update(torch.load(file, map_location="cpu", weights_only=True))
    return tensors


def ties_embeddings(model_dir: Path) -> bool:
    config = json.loads((model_dir / "config.json").read_text())
    return bool(config.get("tie_word_embeddings", False))


@dataclass
class WeightsSchema:
    """What an update must contain: the served checkpoint's tensor names and shapes."""

    shapes: dict[str, tuple[int, ...]]
    tied_output: bool

    @classmethod
    def of(cls, model_dir: Path) -> WeightsSchema:
        return cls(checkpoint_shapes(model_dir), ties_embeddings(model_dir))

    def check(self, given: Mapping[str, tuple[int, ...]], where: str) -> list[str]:
        """Raise InvalidArgument unless `given` matches; return names to drop (tied output)."""
        drop = [TIED_OUTPUT] if self.tied_output and TIED_OUTPUT in given and TIED_OUTPUT not in self.shapes else []
        unknown = sorted(set(given) - set(self.shapes) - set(drop))
        missing = sorted(set(self.shapes) - set(given))
        wrong = [
            f"{name} has shape {list(given[name])}, the model needs {list(shape)}"
            for name, shape in self.shapes.items()
            if name in given and tuple(given[name]) != tuple(shape)
        ]
        problems = []
        if unknown:
            problems.append(f"{len(unknown)} tensors the model does not have: {_some(unknown)}")
        if missing:
            problems.append(f"{len(missing)} of the model's tensors are missing (updates must be complete): {_some(missing)}")
        if wrong:
            problems.append("; ".join(wrong[:5]) + (f" (and {len(wrong) - 5} more)" if len(wrong) > 5 else ""))
        if problems:
            raise InvalidArgument(f"{where}: " + "; ".join(problems))
        return drop


def _some(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def check_checkpoint_folder(path_text: str) -> Path:
    """A readable HF folder for `WeightsHeader.checkpoint_path`, or NOT_FOUND/INVALID_ARGUMENT."""
    if not path_text:
        raise InvalidArgument("header.checkpoint_path: empty path")
    path = Path(path_text).expanduser()
    if not path.is_dir():
        raise NotFound(f"header.checkpoint_path: {path} is not a folder readable by the policy service")
    return path.resolve()


@dataclass
class _Pending:
    shape: tuple[int, ...]
    dtype: torch.dtype
    buffer: bytearray
    filled: int = 0


@dataclass
class TensorAssembler:
    """Rebuilds tensors from `TensorChunk`s (consecutive chunks, increasing offsets)."""

    max_total_bytes: int
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _bytes: int = 0

    def add(self, chunk: common_pb2.TensorChunk, index: int) -> None:
        where = f"chunk {index} ({chunk.name or '<no name>'})"
        if not chunk.name:
            raise InvalidArgument(f"{where}: name is empty")
        if chunk.name in self.tensors:
            raise InvalidArgument(f"{where}: tensor {chunk.name} was already complete")
        pending = self._pending.get(chunk.name)
        if pending is None:
            pending = self._start(chunk, where)
        elif tuple(chunk.shape) != pending.shape or DTYPES.get(chunk.dtype) != pending.dtype:
            raise InvalidArgument(f"{where}: shape/dtype differ from the tensor's first chunk")
        if chunk.offset != pending.filled:
            raise InvalidArgument(f"{where}: offset {chunk.offset}, expected {pending.filled} (chunks must be consecutive)")
        end = pending.filled + len(chunk.data)
        if end > len(pending.buffer):
            raise InvalidArgument(f"{where}: data runs past total_bytes {len(pending.buffer)}")
        pending.buffer[pending.filled : end] = chunk.data
        pending.filled = end
        if end == len(pending.buffer):
            del self._pending[chunk.name]
            flat = torch.frombuffer(pending.buffer, dtype=torch.uint8) if pending.buffer else torch.empty(0, dtype=torch.uint8)
            self.tensors[chunk.name] = flat.view(pending.dtype).reshape(pending.shape)

    def _start(self, chunk: common_pb2.TensorChunk, where: str) -> _Pending:
        dtype = DTYPES.get(chunk.dtype)
        if dtype is None:
            raise InvalidArgument(f"{where}: dtype {chunk.dtype!r} is not one of {', '.join(DTYPES)}")
        if any(d < 0 for d in chunk.shape):
            raise InvalidArgument(f"{where}: negative dimension in shape {list(chunk.shape)}")
        numel = 1
        for d in chunk.shape:
            numel *= d
        expected = numel * torch.empty((), dtype=dtype).element_size()
        if chunk.total_bytes != expected:
            raise InvalidArgument(f"{where}: total_bytes {chunk.total_bytes} != {expected} for shape {list(chunk.shape)} {chunk.dtype}")
        self._bytes += expected
        if self._bytes > self.max_total_bytes:
            raise InvalidArgument(f"{where}: the update exceeds {self.max_total_bytes} bytes, more than the model holds")
        pending = _Pending(tuple(chunk.shape), dtype, bytearray(expected))
        self._pending[chunk.name] = pending
        return pending

    def finish(self, expected_count: int) -> dict[str, torch.Tensor]:
        if self._pending:
            raise InvalidArgument(f"stream ended with incomplete tensors: {_some(sorted(self._pending))}")
        if len(self.tensors) != expected_count:
            raise InvalidArgument(f"header.streamed_tensors is {expected_count}, but {len(self.tensors)} tensors arrived")
        return self.tensors


def save_tensors(tensors: Mapping[str, torch.Tensor], file: Path) -> None:
    """Write tensors as one safetensors file, atomically: a reader sees no file or a whole one.

    How the learner stages a version on the policy's host, and how the vLLM
    backend hands streamed tensors to its workers (other processes).
    """
    partial = file.with_name(file.name + ".partial")
    try:
        save_file({name: t.contiguous() for name, t in tensors.items()}, str(partial), metadata={"format": "pt"})
        os.replace(partial, file)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise

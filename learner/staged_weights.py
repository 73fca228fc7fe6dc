"""Weights staged for a policy service on this host (`learner.sync.mode: shm`).

Each version is written once, as one safetensors file in the policy's
weights staging root (shared memory when it has room; see
`outrider.models.staging`), and only its path crosses gRPC. The
vLLM workers read that file themselves, tensor by tensor, into their
parameters: no TensorChunk serialization, no assembly, no second file. Only weights are written; the
tokenizer and config never change during a run.

Tensors are written in the dtype the policy serves. The cast is the same
round-to-nearest-even conversion the policy's loaders apply to a streamed
float32 tensor (`param.copy_(tensor)`), so the served weights are
bit-identical to the `stream` path's, and the file is half the size of a
float32 one. This holds when every served parameter has the served dtype
(dense HF and vLLM models do); the tests compare the two paths exactly.

Files live in a folder of this process (`learner+<host>+<pid>`). A version's
file is removed as soon as the policy has answered (it has copied the
weights by then), so at most one exists; the folder goes when the publisher
closes or the process exits, and a folder left by a killed learner is
removed by the next process that stages weights in that root.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import struct
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch

from outrider.models.staging import owned_name, remove_orphans, staging_root


# safetensors' dtype codes for what a policy serves, and what a state dict may also hold.
_CODES = {
    torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16",
    torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL",
}


def served_tensors(state: Mapping[str, torch.Tensor], dtype: torch.dtype) -> dict[str, tuple[torch.Tensor, torch.dtype]]:
    """`state` as the policy will hold it: each tensor with the dtype to write it in
    (floating ones: `dtype`), and a tensor that aliases an earlier one (a tied
    `lm_head.weight`) left out, as `save_pretrained` does: the policy's checkpoint
    does not list it either."""
    seen: set[tuple[int, int, tuple[int, ...]]] = set()
    out: dict[str, tuple[torch.Tensor, torch.dtype]] = {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if key in seen:
            continue
        seen.add(key)
        target = dtype if tensor.is_floating_point() else tensor.dtype
        if target not in _CODES:
            raise ValueError(f"{name}: dtype {target} cannot be staged; use one of {', '.join(map(str, _CODES))}")
        out[name] = (tensor.detach(), target)
    return out


def staged_bytes(tensors: Mapping[str, tuple[torch.Tensor, torch.dtype]]) -> int:
    return sum(t.numel() * torch.empty((), dtype=d).element_size() for t, d in tensors.values())


@contextmanager
def _threads(count: int) -> Iterator[None]:
    """Run torch ops with `count` intra-op threads.

    The cast is bound by memory bandwidth, and the policy's engine runs on this
    host (that is what staging means), so some cores are busy: an OpenMP kernel
    with a thread per core then waits at its barriers for threads that are not
    scheduled. On the 2-core CI box under load, casting SmolLM2-135M took
    1.0-1.6 s with 2 threads and 0.1-0.35 s with 1; so half the threads.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def write_safetensors(tensors: Mapping[str, tuple[torch.Tensor, torch.dtype]], file: Path) -> None:
    """Write a safetensors file, casting each tensor on the way.

    Each tensor is cast into one reused scratch buffer and written from there:
    no second copy of the model in the served dtype, and no page faults of a
    fresh buffer per tensor (measured 0.25 s for SmolLM2-135M against 0.30 s
    casting into a mapped file and 0.35 s casting, then `save_file`). Tensors
    go widest element first, so every offset is a multiple of its element
    size. Atomic: the file appears under its name only when complete.
    """
    order = sorted(tensors, key=lambda n: (-torch.empty((), dtype=tensors[n][1]).element_size(), n))
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    sizes = {}
    offset = 0
    for name in order:
        tensor, dtype = tensors[name]
        sizes[name] = tensor.numel() * torch.empty((), dtype=dtype).element_size()
        header[name] = {"dtype": _CODES[dtype], "shape": list(tensor.shape), "data_offsets": [offset, offset + sizes[name]]}
        offset += sizes[name]
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)  # the data starts 8-byte aligned
    scratch = torch.empty(max(sizes.values(), default=0), dtype=torch.uint8)
    partial = file.with_name(file.name + ".partial")
    try:
        with open(partial, "wb") as out, _threads(max(1, torch.get_num_threads() // 2)):
            out.write(struct.pack("<Q", len(text)) + text)
            for name in order:
                tensor, dtype = tensors[name]
                piece = scratch[: sizes[name]]
                piece.view(dtype).view(tensor.shape).copy_(tensor)
                out.write(piece.numpy().data)
        os.replace(partial, file)
    except BaseException:
        partial.unlink(missing_ok=True)  # e.g. shared memory filled up meanwhile
        raise


class WeightsStager:
    """Writes versions into this process's staging folder; removes them again."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        atexit.register(self.close)

    def write(self, state: Mapping[str, torch.Tensor], dtype: torch.dtype, version: int) -> Path:
        """Stage `state` in `dtype` as `version`; returns the file to send."""
        tensors = served_tensors(state, dtype)
        if self.folder is None:
            self.folder = self._create(staged_bytes(tensors))
        file = self.folder / f"v{version:07d}.safetensors"
        write_safetensors(tensors, file)
        return file

    @staticmethod
    def discard(file: Path) -> None:
        file.unlink(missing_ok=True)

    @staticmethod
    def _create(needed_bytes: int) -> Path:
        root = staging_root(needed_bytes)
        remove_orphans(root)
        folder = root / owned_name("learner")
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder

    def close(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

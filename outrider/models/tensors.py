"""Model weights on the wire: the dtype names of `TensorChunk` and how a state dict is chunked.

A streamed weights update (`UpdateWeights` with `streamed_tensors`) is a header
followed by `TensorChunk` messages: each carries a tensor's name, shape, dtype
name and a slice of its raw bytes, `data = bytes[offset : offset + len(data)]`
of `total_bytes = numel * element_size`. The sender (`outrider.clients.policy`,
used by the learner's weight sync) chunks with `tensor_chunks`; the receiver
(the policy service's `TensorAssembler`) reads the same `DTYPES`. Both import
them from here, below either side (docs/architecture.md, Layers).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch

from outrider.proto.v1 import common_pb2

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""`TensorChunk.dtype` names and the torch dtypes they stand for (also the dtypes a policy serves)."""
DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024


def tensor_chunks(state_dict: Mapping[str, torch.Tensor], chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[common_pb2.TensorChunk]:
    """Split tensors into `TensorChunk`s of at most `chunk_bytes` data each."""
    names = {dtype: name for name, dtype in DTYPES.items()}
    for name, tensor in state_dict.items():
        tensor = tensor.detach().to("cpu").contiguous()
        if tensor.dtype not in names:
            raise ValueError(f"{name}: dtype {tensor.dtype} cannot be streamed; use one of {', '.join(DTYPES)}")
        raw = tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
        offset = 0
        while True:
            piece = raw[offset : offset + chunk_bytes]
            yield common_pb2.TensorChunk(
                name=name, shape=list(tensor.shape), dtype=names[tensor.dtype],
                offset=offset, total_bytes=len(raw), data=piece,
            )
            offset += len(piece)
            if offset >= len(raw):
                break

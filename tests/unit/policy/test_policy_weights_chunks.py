"""Streamed tensors: chunking round-trips exactly; malformed streams and mismatched sets are refused."""

from __future__ import annotations

import pytest
import torch

from outrider.models.tensors import tensor_chunks
from outrider.proto.v1 import common_pb2
from outrider.serving import InvalidArgument
from outrider.services.policy.weights import TensorAssembler, WeightsSchema


def assemble(chunks, count, limit=1 << 30):
    assembler = TensorAssembler(max_total_bytes=limit)
    for i, chunk in enumerate(chunks):
        assembler.add(chunk, i)
    return assembler.finish(count)


def test_chunks_round_trip_bit_exactly_across_dtypes():
    torch.manual_seed(0)
    state = {
        "a": torch.randn(3, 5),
        "b": torch.randn(7).to(torch.bfloat16),
        "c": torch.randn(2, 2, 2).to(torch.float16),
        "empty": torch.zeros(0, 4),
    }
    chunks = list(tensor_chunks(state, chunk_bytes=8))
    # a: 60 bytes -> 8 chunks of <= 8; b: 14 -> 2; c: 16 -> 2; empty: one chunk with no data
    assert [sum(1 for c in chunks if c.name == n) for n in state] == [8, 2, 2, 1]
    rebuilt = assemble(chunks, count=4)
    for name, tensor in state.items():
        assert rebuilt[name].dtype == tensor.dtype and rebuilt[name].shape == tensor.shape
        assert torch.equal(rebuilt[name], tensor)


def test_non_contiguous_tensors_are_sent_in_logical_order():
    transposed = torch.arange(6, dtype=torch.float32).reshape(2, 3).t()
    assert torch.equal(assemble(tensor_chunks({"t": transposed}), 1)["t"], transposed)


def chunk(**fields):
    base = dict(name="w", shape=[2], dtype="float32", offset=0, total_bytes=8, data=b"\0" * 8)
    return common_pb2.TensorChunk(**{**base, **fields})


@pytest.mark.parametrize(
    "chunks, count, words",
    [
        ([chunk(dtype="int8")], 1, ["dtype 'int8'"]),
        ([chunk(total_bytes=12)], 1, ["total_bytes 12 != 8"]),
        ([chunk(data=b"\0" * 4), chunk(offset=8, data=b"\0" * 4)], 1, ["offset 8, expected 4"]),
        ([chunk(data=b"\0" * 4)], 1, ["incomplete tensors: w"]),
        ([chunk(data=b"\0" * 12)], 1, ["runs past total_bytes"]),
        ([chunk(), chunk()], 2, ["already complete"]),
        ([chunk()], 2, ["streamed_tensors is 2, but 1"]),
        ([chunk(name="")], 1, ["name is empty"]),
        ([chunk(data=b"\0" * 4), chunk(offset=4, data=b"\0" * 4, shape=[1, 2])], 1, ["differ from the tensor's first chunk"]),
    ],
)
def test_malformed_streams_are_refused(chunks, count, words):
    with pytest.raises(InvalidArgument) as failure:
        assemble(chunks, count)
    for word in words:
        assert word in failure.value.message


def test_the_byte_budget_bounds_memory():
    with pytest.raises(InvalidArgument, match="exceeds 4 bytes"):
        assemble([chunk()], 1, limit=4)


SCHEMA = WeightsSchema({"embed": (10, 4), "norm": (4,)}, tied_output=True)


def test_schema_accepts_a_complete_set_and_drops_a_tied_head():
    assert SCHEMA.check({"embed": (10, 4), "norm": (4,)}, "x") == []
    assert SCHEMA.check({"embed": (10, 4), "norm": (4,), "lm_head.weight": (10, 4)}, "x") == ["lm_head.weight"]
    untied = WeightsSchema({"embed": (10, 4)}, tied_output=False)
    with pytest.raises(InvalidArgument, match="does not have: lm_head.weight"):
        untied.check({"embed": (10, 4), "lm_head.weight": (10, 4)}, "x")


def test_schema_names_missing_unknown_and_misshapen_tensors():
    with pytest.raises(InvalidArgument) as failure:
        SCHEMA.check({"embed": (10, 5), "extra": (1,)}, "streamed tensors")
    message = failure.value.message
    assert message.startswith("streamed tensors: ")
    assert "1 tensors the model does not have: extra" in message
    assert "1 of the model's tensors are missing (updates must be complete): norm" in message
    assert "embed has shape [10, 5], the model needs [10, 4]" in message

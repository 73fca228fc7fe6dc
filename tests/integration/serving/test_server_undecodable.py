"""Requests that are not valid protobuf, over a real channel: INVALID_ARGUMENT naming the method,
one log line with the status and no traceback, and the server keeps serving. Also for a message
nested deeper than the decoder allows, and for a bad message in the middle of a request stream."""

from __future__ import annotations

import logging

import grpc
import pytest
from google.protobuf import struct_pb2

from outrider.config import ServerConfig
from outrider.serving import build_server


async def _fields(request: struct_pb2.Struct, context) -> struct_pb2.Struct:
    return struct_pb2.Struct(fields={"count": struct_pb2.Value(number_value=len(request.fields))})


async def _total(request_iterator, context) -> struct_pb2.Struct:
    total = 0
    async for message in request_iterator:
        total += len(message.fields)
    return struct_pb2.Struct(fields={"count": struct_pb2.Value(number_value=total)})


def _register(server: grpc.aio.Server) -> None:
    handlers = {
        "Fields": grpc.unary_unary_rpc_method_handler(
            _fields, request_deserializer=struct_pb2.Struct.FromString, response_serializer=struct_pb2.Struct.SerializeToString
        ),
        "Total": grpc.stream_unary_rpc_method_handler(
            _total, request_deserializer=struct_pb2.Struct.FromString, response_serializer=struct_pb2.Struct.SerializeToString
        ),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Structs", handlers)])


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2); lengths here stay below 2^14 (two varint bytes at most)."""
    size = len(payload)
    length = bytes([size]) if size < 128 else bytes([(size & 0x7F) | 0x80, size >> 7])
    return bytes([(number << 3) | 2]) + length + payload


def nested_struct(depth: int) -> bytes:
    """Struct{fields: {"a": Value{struct_value: Struct{...}}}}, `depth` Structs deep, encoded by hand."""
    inner = b""
    for _ in range(depth):
        value = _field(5, inner)  # Value.struct_value = 5
        entry = _field(1, b"a") + _field(2, value)  # map entry: key = 1, value = 2
        inner = _field(1, entry)  # Struct.fields = 1
    return inner


@pytest.fixture
async def channel():
    built = build_server(ServerConfig(metrics_port=None), _register, ["test.Structs"])
    await built.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as chan:
        yield chan
    await built.stop(0)


async def call_fields(channel, raw: bytes) -> struct_pb2.Struct:
    return await channel.unary_unary("/test.Structs/Fields", response_deserializer=struct_pb2.Struct.FromString)(raw)


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xff\xff\xff", b"\x0a\x05ab", nested_struct(200)],  # bad tag, truncated field, 200 levels
    ids=["garbage", "truncated", "too-deep"],
)
async def test_an_undecodable_request_is_invalid_argument_with_one_log_line(channel, caplog, raw):
    caplog.set_level(logging.INFO, logger="outrider.serving.server")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call_fields(channel, raw)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert info.value.details().startswith("Fields: the request is not a valid message (DecodeError")
    records = [r for r in caplog.records if r.name.startswith("grpc") or r.name == "outrider.serving.server"]
    assert [(r.levelno, r.exc_info) for r in records] == [(logging.INFO, None)], [r.getMessage() for r in records]
    assert records[0].getMessage().startswith("test.Structs/Fields -> INVALID_ARGUMENT: Fields: the request is not")
    reply = await call_fields(channel, nested_struct(3))  # still serving; 3 levels decode fine
    assert reply.fields["count"].number_value == 1.0


async def test_a_bad_message_inside_a_request_stream_is_invalid_argument(channel):
    total = channel.stream_unary("/test.Structs/Total", response_deserializer=struct_pb2.Struct.FromString)
    good = struct_pb2.Struct(fields={"x": struct_pb2.Value(number_value=1)}).SerializeToString()
    assert (await total(iter([good, good]))).fields["count"].number_value == 2.0
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await total(iter([good, b"\xff\xff\xff\xff", good]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("Total: the request is not a valid message (DecodeError")

"""Two answers every server gives the same way, over a real channel:

* a handler that hits RecursionError (a request nested past what Python's recursion follows,
  e.g. JSON text parsed with plain `json.loads`) answers INVALID_ARGUMENT, one log line and no
  traceback, not INTERNAL: only a request's nesting goes that deep;
* a refusal for load with a retry hint carries it as trailing metadata `retry-after-ms`, and
  its message says "retry in N ms"."""

from __future__ import annotations

import json
import logging

import grpc
import pytest
from google.protobuf import struct_pb2

from outrider.config import ServerConfig
from outrider.serving import ResourceExhausted, build_server


async def _parse(request: struct_pb2.Struct, context) -> struct_pb2.Struct:
    value = json.loads(request.fields["json"].string_value)  # deliberately unguarded
    return struct_pb2.Struct(fields={"type": struct_pb2.Value(string_value=type(value).__name__)})


async def _busy(request: struct_pb2.Struct, context) -> struct_pb2.Struct:
    raise ResourceExhausted("busy: 3 calls in flight, the limit is 3", retry_after_ms=250)


def _register(server: grpc.aio.Server) -> None:
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            handler, request_deserializer=struct_pb2.Struct.FromString, response_serializer=struct_pb2.Struct.SerializeToString
        )
        for name, handler in (("Parse", _parse), ("Busy", _busy))
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Depth", handlers)])


@pytest.fixture
async def channel():
    built = build_server(ServerConfig(metrics_port=None), _register, ["test.Depth"])
    await built.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as chan:
        yield chan
    await built.stop(0)


def _call(channel, method: str):
    return channel.unary_unary(f"/test.Depth/{method}", request_serializer=struct_pb2.Struct.SerializeToString,
                               response_deserializer=struct_pb2.Struct.FromString)


def _json(text: str) -> struct_pb2.Struct:
    return struct_pb2.Struct(fields={"json": struct_pb2.Value(string_value=text)})


async def test_recursion_error_is_invalid_argument_with_one_log_line(channel, caplog):
    caplog.set_level(logging.INFO, logger="outrider.serving.server")
    deep = "[" * 100_000 + "]" * 100_000  # far past the default recursion limit of 1,000
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _call(channel, "Parse")(_json(deep))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert info.value.details().startswith("Parse: the request is nested too deeply to process (maximum recursion depth")
    records = [r for r in caplog.records if r.name == "outrider.serving.server"]
    assert [(r.levelno, r.exc_info) for r in records] == [(logging.INFO, None)], [r.getMessage() for r in records]
    assert (await _call(channel, "Parse")(_json("[[1]]"))).fields["type"].string_value == "list"  # still serving


async def test_resource_exhausted_carries_the_retry_hint(channel):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _call(channel, "Busy")(struct_pb2.Struct())
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert info.value.details() == "busy: 3 calls in flight, the limit is 3; retry in 250 ms"
    assert ("retry-after-ms", "250") in tuple(info.value.trailing_metadata())


def test_without_a_hint_there_is_no_metadata():
    refusal = ResourceExhausted("sessions: 10 open, the limit is 10")
    assert (refusal.message, refusal.trailing_metadata()) == ("sessions: 10 open, the limit is 10", ())

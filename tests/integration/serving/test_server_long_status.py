"""A status message that quotes a long request value reaches the client as the status meant.

Found by the curriculum fuzz test: NextTasks(env="a" * 20000) answered NOT_FOUND quoting the
name, gRPC put the 20 KB message into the trailer, and the client refused the trailer
("received metadata size exceeds hard limit"), so it saw RESOURCE_EXHAUSTED instead."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import struct_pb2

from outrider.config import ServerConfig
from outrider.serving import NotFound, build_server
from outrider.serving.server import MAX_STATUS_MESSAGE_BYTES, status_message


async def _lookup(request: struct_pb2.Struct, context) -> struct_pb2.Struct:
    name = request.fields["name"].string_value
    raise NotFound(f"name: no such thing {name!r}")


async def _crash(request: struct_pb2.Struct, context) -> struct_pb2.Struct:
    raise ValueError(request.fields["name"].string_value)


def _register(server: grpc.aio.Server) -> None:
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            behaviour, request_deserializer=struct_pb2.Struct.FromString, response_serializer=struct_pb2.Struct.SerializeToString
        )
        for name, behaviour in (("Lookup", _lookup), ("Crash", _crash))
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Long", handlers)])


@pytest.fixture
async def channel():
    built = build_server(ServerConfig(metrics_port=None), _register, ["test.Long"])
    await built.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as chan:
        yield chan
    await built.stop(0)


async def call(channel, method: str, name: str) -> grpc.aio.AioRpcError:
    request = struct_pb2.Struct(fields={"name": struct_pb2.Value(string_value=name)})
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await channel.unary_unary(f"/test.Long/{method}", response_deserializer=struct_pb2.Struct.FromString)(request.SerializeToString())
    return info.value


@pytest.mark.parametrize("name", ["a" * 20_000, "é" * 10_000, "😀" * 5_000], ids=["ascii", "2-byte", "4-byte"])
async def test_a_long_quoted_value_is_cut_and_the_status_kept(channel, name):
    error = await call(channel, "Lookup", name)
    assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()
    details = error.details()
    head, _, tail = details.rpartition("… (")
    # The message is "name: no such thing " (20 bytes) and the name in quotes (its bytes + 2).
    assert len(head.encode()) <= MAX_STATUS_MESSAGE_BYTES and head.startswith("name: no such thing '" + name[:10])
    assert tail == f"{20 + 2 + len(name.encode()) - len(head.encode())} more bytes)"


async def test_an_internal_error_message_is_cut_too(channel):
    error = await call(channel, "Crash", "x" * 30_000)
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details().startswith("internal error in Crash: ValueError: xxx") and error.details().endswith(" more bytes)")


def test_short_messages_are_unchanged_and_cuts_keep_whole_characters():
    assert status_message("env: unknown 'x'") == "env: unknown 'x'"
    exact = "é" * (MAX_STATUS_MESSAGE_BYTES // 2)
    assert status_message(exact) == exact
    cut = status_message("a" + "é" * MAX_STATUS_MESSAGE_BYTES)  # 1 + 2n bytes: byte 2000 splits an é
    assert cut == "a" + "é" * ((MAX_STATUS_MESSAGE_BYTES - 1) // 2) + f"… ({2 * MAX_STATUS_MESSAGE_BYTES - 1998} more bytes)"

"""The shared gRPC server skeleton, over real channels."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from outrider.config import ServerConfig
from outrider.serving import FailedPrecondition, NotFound, build_server

TESTS_DIR = Path(__file__).resolve().parents[2]


async def _echo(request: bytes, context) -> bytes:
    if request == b"missing":
        raise NotFound("session 'missing' does not exist")
    if request == b"stale":
        raise FailedPrecondition("version 3 is older than the served version 5")
    if request == b"bug":
        raise ZeroDivisionError("division by zero")
    return request


async def _count(request: bytes, context):
    for index in range(int(request)):
        if index == 2 and request == b"9":
            raise NotFound("item 2 vanished")
        yield str(index).encode()


def _register(server: grpc.aio.Server) -> None:
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "test.Echo",
                {
                    "Echo": grpc.unary_unary_rpc_method_handler(_echo),
                    "Count": grpc.unary_stream_rpc_method_handler(_count),
                },
            )
        ]
    )


@pytest.fixture
async def server():
    built = build_server(ServerConfig(), _register, ["test.Echo"])
    await built.start()
    yield built
    await built.stop(0)


async def test_health_reports_serving_for_the_server_and_each_service(server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in ("", "test.Echo"):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=name))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.Check(health_pb2.HealthCheckRequest(service="no.Such"))
        assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_the_services(server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        replies = [reply async for reply in stub.ServerReflectionInfo(iter([request]))]
    names = {service.name for service in replies[0].list_services_response.service}
    assert names == {"test.Echo", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}


async def test_service_errors_become_their_status_and_the_server_keeps_serving(server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        echo = channel.unary_unary("/test.Echo/Echo")
        expected = {
            b"missing": (grpc.StatusCode.NOT_FOUND, "session 'missing' does not exist"),
            b"stale": (grpc.StatusCode.FAILED_PRECONDITION, "version 3 is older than the served version 5"),
            b"bug": (grpc.StatusCode.INTERNAL, "internal error in Echo: ZeroDivisionError: division by zero"),
        }
        for request, (code, message) in expected.items():
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await echo(request)
            assert (error.value.code(), error.value.details()) == (code, message)
        assert await echo(b"still here") == b"still here"

        count = channel.unary_stream("/test.Echo/Count")
        assert [item async for item in count(b"3")] == [b"0", b"1", b"2"]
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as error:
            async for item in count(b"9"):
                received.append(item)
        assert received == [b"0", b"1"]
        assert (error.value.code(), error.value.details()) == (grpc.StatusCode.NOT_FOUND, "item 2 vanished")


async def test_rpc_metrics_are_exported(server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        echo = channel.unary_unary("/test.Echo/Echo")
        await echo(b"x")
        with pytest.raises(grpc.aio.AioRpcError):
            await echo(b"missing")
    url = f"http://127.0.0.1:{server.metrics.port}/metrics"
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    assert 'outrider_rpc_total{code="OK",method="Echo",service="test.Echo"}' in body
    assert 'outrider_rpc_total{code="NOT_FOUND",method="Echo",service="test.Echo"}' in body


async def test_concurrency_limit_answers_resource_exhausted():
    built = build_server(ServerConfig(max_concurrent_rpcs=2, metrics_port=None), _register_slow, ["test.Slow"])
    await built.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as channel:
            sleep = channel.unary_unary("/test.Slow/Sleep")
            results = await asyncio.gather(*(sleep(b"0.5") for _ in range(4)), return_exceptions=True)
        codes = sorted(r.code().name if isinstance(r, grpc.aio.AioRpcError) else "OK" for r in results)
        assert codes == ["OK", "OK", "RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED"]
    finally:
        await built.stop(0)


def _register_slow(server: grpc.aio.Server) -> None:
    from testkit.slow_server import register

    register(server)


def test_sigterm_drains_in_flight_calls_then_exits(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR)}
    process = subprocess.Popen(
        [sys.executable, "-m", "testkit.slow_server"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        ready = process.stdout.readline()
        assert ready.startswith("OUTRIDER_READY service=slow"), ready
        port = int(dict(part.split("=") for part in ready.split()[1:])["port"])
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            sleep = channel.unary_unary("/test.Slow/Sleep")
            in_flight = sleep.future(b"1.5")
            time.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            with pytest.raises(grpc.RpcError) as refused:
                sleep(b"0", timeout=2)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert in_flight.result(timeout=5) == b"1.5", "the call in flight finished normally"
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()

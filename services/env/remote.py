"""Proxy to remote environments: processes (any language) that serve EnvService.

One `grpc.aio` channel per address, reused. Failures of the remote become
statuses that name the environment: a remote that cannot be reached answers
UNAVAILABLE ("remote environment 'counter' at 127.0.0.1:5 is unavailable: ..."),
one that is too slow DEADLINE_EXCEEDED, and a status the remote itself returned
keeps its code with the environment's name added.
"""

from __future__ import annotations

import grpc

from outrider.proto.v1 import env_pb2, env_pb2_grpc
from outrider.serving import DeadlineExceeded, ServiceError, Unavailable


def _remote_error(spec: env_pb2.EnvSpec, error: grpc.aio.AioRpcError) -> ServiceError:
    where = f"remote environment {spec.name!r} at {spec.remote.address}"
    code = error.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return Unavailable(f"{where} is unavailable: {error.details()}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(f"{where} did not answer in time: {error.details()}")
    failure = ServiceError(f"{where}: {error.details()}")
    failure.code = code
    return failure


class RemoteEnvs:
    def __init__(self, default_timeout_s: float, max_message_bytes: int):
        self.default_timeout_s = default_timeout_s
        self._options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _stub(self, spec: env_pb2.EnvSpec) -> env_pb2_grpc.EnvServiceStub:
        address = spec.remote.address
        if address not in self._channels:
            self._channels[address] = grpc.aio.insecure_channel(address, options=self._options)
        return env_pb2_grpc.EnvServiceStub(self._channels[address])

    def _timeout(self, spec: env_pb2.EnvSpec) -> float:
        return spec.remote.timeout_s or self.default_timeout_s

    @staticmethod
    def remote_name(spec: env_pb2.EnvSpec) -> str:
        return spec.remote.env or spec.name

    async def _call(self, spec: env_pb2.EnvSpec, method: str, request):
        try:
            return await getattr(self._stub(spec), method)(request, timeout=self._timeout(spec))
        except grpc.aio.AioRpcError as exc:
            raise _remote_error(spec, exc) from None

    async def list_tasks(self, spec: env_pb2.EnvSpec, request: env_pb2.ListTasksRequest) -> env_pb2.ListTasksResponse:
        forwarded = env_pb2.ListTasksRequest()
        forwarded.CopyFrom(request)
        forwarded.env = self.remote_name(spec)
        response = await self._call(spec, "ListTasks", forwarded)
        for task in response.tasks:
            task.env = spec.name
        return response

    async def create_session(self, spec: env_pb2.EnvSpec, task_id: str, seed: int) -> env_pb2.CreateSessionResponse:
        request = env_pb2.CreateSessionRequest(env=self.remote_name(spec), task_id=task_id, seed=seed)
        return await self._call(spec, "CreateSession", request)

    async def step(self, spec: env_pb2.EnvSpec, remote_id: str, action: env_pb2.Action) -> env_pb2.StepResponse:
        return await self._call(spec, "Step", env_pb2.StepRequest(session_id=remote_id, action=action))

    async def close_session(self, spec: env_pb2.EnvSpec, remote_id: str) -> env_pb2.CloseSessionResponse:
        return await self._call(spec, "CloseSession", env_pb2.CloseSessionRequest(session_id=remote_id))

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

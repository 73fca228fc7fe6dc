"""gRPC servicer of outrider.v1.EnvService: validates, delegates to EnvCore."""

from __future__ import annotations

from outrider.proto.v1 import env_pb2, env_pb2_grpc
from outrider.services.env.core import EnvCore


class EnvServicer(env_pb2_grpc.EnvServiceServicer):
    def __init__(self, core: EnvCore):
        self.core = core

    async def ListEnvs(self, request, context):
        return env_pb2.ListEnvsResponse(envs=self.core.registry.specs())

    async def RegisterEnv(self, request, context):
        return env_pb2.RegisterEnvResponse(spec=await self.core.register(request))

    async def UnregisterEnv(self, request, context):
        self.core.unregister(request.name)
        return env_pb2.UnregisterEnvResponse()

    async def ListTasks(self, request, context):
        return await self.core.list_tasks(request)

    async def CreateSession(self, request, context):
        return await self.core.create_session(request)

    async def Step(self, request, context):
        return await self.core.step(request)

    async def CloseSession(self, request, context):
        return await self.core.close_session(request.session_id)

    async def RunAgent(self, request, context):
        return await self.core.agents.run(request)

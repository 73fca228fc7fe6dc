"""EnvClient: a small synchronous client of the env service.

    with EnvClient("127.0.0.1:50052") as envs:
        tasks = envs.list_tasks("math", split="train", limit=8)
        session = envs.create_session("math", tasks[0].id, seed=1)
        reply = envs.step(session.session_id, "Answer: 42")
        reply.reward if reply.HasField("reward") else reply.status   # absent when the env failed
        envs.close_session(session.session_id)

Failures raise `grpc.RpcError` with the service's status code and message.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from outrider.envs.spec import load_spec_file
from outrider.proto.v1 import common_pb2, env_pb2, env_pb2_grpc
from outrider.serving.credentials import ClientCredentials, open_channel


class EnvClient:
    def __init__(self, address: str, timeout_s: float = 60.0, max_message_bytes: int = 64 * 1024 * 1024,
                 credentials: ClientCredentials | None = None):
        self.address = address
        self.timeout_s = timeout_s
        options = [("grpc.max_send_message_length", max_message_bytes), ("grpc.max_receive_message_length", max_message_bytes)]
        self._channel = open_channel(address, options, credentials)
        self._stub = env_pb2_grpc.EnvServiceStub(self._channel)

    def list_envs(self) -> list[env_pb2.EnvSpec]:
        return list(self._stub.ListEnvs(env_pb2.ListEnvsRequest(), timeout=self.timeout_s).envs)

    def register(self, spec: env_pb2.EnvSpec | str | Path, replace: bool = False) -> env_pb2.EnvSpec:
        """Register a spec (a message, or a YAML file path); returns it as stored."""
        if not isinstance(spec, env_pb2.EnvSpec):
            spec = load_spec_file(spec)
        return self._stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=spec, replace=replace), timeout=self.timeout_s).spec

    def unregister(self, name: str) -> None:
        self._stub.UnregisterEnv(env_pb2.UnregisterEnvRequest(name=name), timeout=self.timeout_s)

    def list_tasks(
        self, env: str, split: str = "train", offset: int = 0, limit: int = 0, include_reference: bool = False
    ) -> list[common_pb2.Task]:
        request = env_pb2.ListTasksRequest(env=env, split=split, offset=offset, limit=limit, include_reference=include_reference)
        return list(self._stub.ListTasks(request, timeout=self.timeout_s).tasks)

    def count_tasks(self, env: str, split: str = "train") -> int:
        request = env_pb2.ListTasksRequest(env=env, split=split, limit=1)
        return self._stub.ListTasks(request, timeout=self.timeout_s).total

    def create_session(self, env: str, task_id: str, seed: int = 0) -> env_pb2.CreateSessionResponse:
        return self._stub.CreateSession(env_pb2.CreateSessionRequest(env=env, task_id=task_id, seed=seed), timeout=self.timeout_s)

    def step(self, session_id: str, text: str, token_ids: Sequence[int] = ()) -> env_pb2.StepResponse:
        action = env_pb2.Action(text=text, token_ids=list(token_ids))
        return self._stub.Step(env_pb2.StepRequest(session_id=session_id, action=action), timeout=self.timeout_s)

    def close_session(self, session_id: str) -> env_pb2.CloseSessionResponse:
        return self._stub.CloseSession(env_pb2.CloseSessionRequest(session_id=session_id), timeout=self.timeout_s)

    def run_agent(self, env: str, task_id: str, session_id: str, *, seed: int = 0, model: str = "",
                  timeout_s: float | None = None) -> env_pb2.RunAgentResponse:
        """One episode of an `agent` environment against the captured policy session
        `session_id`; waits for the program (pass `timeout_s` above its wall-clock limit)."""
        request = env_pb2.RunAgentRequest(env=env, task_id=task_id, seed=seed, session_id=session_id, model=model)
        return self._stub.RunAgent(request, timeout=timeout_s or self.timeout_s)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> EnvClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

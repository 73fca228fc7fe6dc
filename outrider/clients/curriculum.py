"""CurriculumClient: a small synchronous client of the curriculum service.

    with CurriculumClient("127.0.0.1:50054") as curriculum:
        tasks = curriculum.next_tasks(8)
        curriculum.report(tasks[0].env, tasks[0].id, [1.0, 0.0, 1.0, 1.0])
        state = curriculum.state(max_tasks=10)

Failures raise `grpc.RpcError` with the service's status code and message.
While the service is still loading its task pools it answers UNAVAILABLE;
`wait_ready` blocks until it has them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import grpc

from outrider.proto.v1 import common_pb2, curriculum_pb2, curriculum_pb2_grpc
from outrider.serving.credentials import ClientCredentials, open_channel


class CurriculumClient:
    def __init__(self, address: str, timeout_s: float = 30.0, credentials: ClientCredentials | None = None):
        self.address = address
        self.timeout_s = timeout_s
        self._channel = open_channel(address, credentials=credentials)
        self._stub = curriculum_pb2_grpc.CurriculumServiceStub(self._channel)

    def next_tasks(self, n: int, env: str = "", include_reference: bool = False) -> list[common_pb2.Task]:
        request = curriculum_pb2.NextTasksRequest(n=n, env=env, include_reference=include_reference)
        return list(self._stub.NextTasks(request, timeout=self.timeout_s).tasks)

    def report(self, env: str, task_id: str, rewards: Sequence[float], policy_version: int = 0) -> int:
        return self.report_many([curriculum_pb2.TaskOutcome(env=env, task_id=task_id, rewards=list(rewards), policy_version=policy_version)])

    def report_many(self, outcomes: Iterable[curriculum_pb2.TaskOutcome]) -> int:
        request = curriculum_pb2.ReportOutcomesRequest(outcomes=list(outcomes))
        return self._stub.ReportOutcomes(request, timeout=self.timeout_s).accepted

    def state(self, max_tasks: int = 0) -> curriculum_pb2.CurriculumState:
        return self._stub.GetState(curriculum_pb2.GetStateRequest(max_tasks=max_tasks), timeout=self.timeout_s)

    def wait_ready(self, timeout_s: float = 60.0) -> curriculum_pb2.CurriculumState:
        """Poll GetState until the task pools are loaded; raise the last error after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.state()
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
            time.sleep(0.1)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> CurriculumClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

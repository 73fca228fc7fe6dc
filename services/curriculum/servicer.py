"""CurriculumService over gRPC: validate requests, delegate to CurriculumCore."""

from __future__ import annotations

import math
import time

from outrider.proto.v1 import common_pb2, curriculum_pb2, curriculum_pb2_grpc
from outrider.serving import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from outrider.services.curriculum.core import CurriculumCore, NotReady, Outcome, UnknownEnv, UnknownTask
from outrider.services.curriculum.store import StoreError
from outrider.services.curriculum.strategies import NoTasks

MAX_STATE_TASKS = 100_000


def _ready_error(exc: NotReady):
    return FailedPrecondition(str(exc)) if exc.failed else Unavailable(str(exc))


class CurriculumServicer(curriculum_pb2_grpc.CurriculumServiceServicer):
    def __init__(self, core: CurriculumCore):
        self.core = core

    async def NextTasks(self, request, context):
        limit = self.core.cfg.max_tasks_per_call
        if not 1 <= request.n <= limit:
            raise InvalidArgument(f"n: must be between 1 and {limit}, got {request.n}")
        try:
            tasks = await self.core.next_tasks(request.n, request.env)
        except NotReady as exc:
            raise _ready_error(exc) from None
        except UnknownEnv:
            envs = ", ".join(self.core.curriculum.table.envs)
            raise NotFound(f"env: no tasks of environment {request.env!r} here (environments: {envs})") from None
        except NoTasks as exc:
            raise FailedPrecondition(str(exc)) from None
        except StoreError as exc:
            raise Unavailable(f"curriculum store: {exc}") from None
        return curriculum_pb2.NextTasksResponse(
            tasks=[
                common_pb2.Task(
                    id=t.task_id,
                    env=t.env,
                    split=t.split,
                    difficulty=t.difficulty,
                    preview=t.preview,
                    reference=t.reference if request.include_reference else "",
                )
                for t in tasks
            ]
        )

    async def ReportOutcomes(self, request, context):
        if not request.outcomes:
            raise InvalidArgument("outcomes: empty batch")
        outcomes = []
        for index, outcome in enumerate(request.outcomes):
            where = f"outcomes[{index}]"
            if not outcome.env or not outcome.task_id:
                raise InvalidArgument(f"{where}: env and task_id are required")
            if not outcome.rewards:
                raise InvalidArgument(f"{where}.rewards: empty (one reward per attempt)")
            if not all(math.isfinite(r) for r in outcome.rewards):
                raise InvalidArgument(f"{where}.rewards: not all finite ({list(outcome.rewards)[:8]})")
            outcomes.append(Outcome(outcome.env, outcome.task_id, list(outcome.rewards)))
        try:
            accepted = await self.core.report(outcomes, time.time())
        except NotReady as exc:
            raise _ready_error(exc) from None
        except UnknownTask as exc:
            bad = outcomes[exc.args[0]]
            raise NotFound(f"outcomes[{exc.args[0]}]: unknown task {bad.task_id!r} of environment {bad.env!r}; nothing was recorded") from None
        except StoreError as exc:
            raise Unavailable(f"curriculum store: {exc}") from None
        return curriculum_pb2.ReportOutcomesResponse(accepted=accepted)

    async def GetState(self, request, context):
        try:
            snap = self.core.snapshot(min(request.max_tasks, MAX_STATE_TASKS))
        except NotReady as exc:
            raise _ready_error(exc) from None
        return curriculum_pb2.CurriculumState(
            strategy=snap["strategy"],
            num_tasks=snap["num_tasks"],
            num_excluded=snap["num_excluded"],
            total_attempts=snap["total_attempts"],
            envs=[curriculum_pb2.EnvStats(**e) for e in snap["envs"]],
            tasks=[curriculum_pb2.TaskStats(**t) for t in snap["tasks"]],
        )

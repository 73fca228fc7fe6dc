"""What the env service does, behind its gRPC servicer.

Environment failures never become rewards: when a Python environment raises
in `step`, the response has status ERROR with the message, done=true and no
reward; when it raises in `reset`, CreateSession fails with INTERNAL naming
the environment and task. Every step reply, Python or remote, is held to the
Step contract (contract.py): one that says OK without a reward, or says
nothing, becomes such an ERROR too. An OpenEnv server (kind `openenv`) that
fails a step (HTTP 5xx, an EXECUTION_ERROR, a reply not in its format, a null
reward) gets the same ERROR; one that fails a reset makes CreateSession
INTERNAL. All are counted (outrider_env_errors_total) and kept in the session
record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from outrider.envs import openenv
from outrider.envs.episode import Episode, EpisodeStep
from outrider.envs.interface import Message, ParamError, TaskNotFound
from outrider.envs.registry import EnvExists, EnvNotFound, EnvRegistry, RegisteredEnv
from outrider.envs.spec import SpecError
from outrider.proto.v1 import common_pb2, env_pb2
from outrider.serving import AlreadyExists, FailedPrecondition, Internal, InvalidArgument, NotFound, ResourceExhausted
from outrider.services.env.contract import checked_step
from outrider.services.env.metrics import ENV_ERRORS, STEPS, TOOL_CALLS
from outrider.services.env.openenv import EnvFailure, OpenEnvs
from outrider.services.env.remote import RemoteEnvs
from outrider.services.env.sessions import Session, SessionLimitReached, SessionManager, SessionNotFound

log = logging.getLogger(__name__)

OK = common_pb2.ItemStatus.OK
ERROR = common_pb2.ItemStatus.ERROR
MAX_PAGE_FACTOR = 10
CATALOG_THREADS = 2
"""Threads that build task catalogs, so at most this many builds run at once. A catalog is
built on its first use (ListTasks, a first episode), and a large one takes a while (10^6
math tasks: ~26 s on one core): off the event loop, every other call is served meanwhile."""


def spec_problem_message(exc: SpecError) -> str:
    return "; ".join(f"spec.{path}: {message}" for path, message in exc.problems)


class EnvCore:
    def __init__(
        self, registry: EnvRegistry, sessions: SessionManager, remotes: RemoteEnvs, max_action_bytes: int, page_size: int, openenvs: OpenEnvs
    ):
        self.registry = registry
        self.sessions = sessions
        self.remotes = remotes
        self.openenvs = openenvs
        self.max_action_bytes = max_action_bytes
        self.page_size = page_size
        self.agents = None
        """RunAgent's episodes (`agents.AgentEpisodes`), set by the server."""
        self._catalog_pool = ThreadPoolExecutor(CATALOG_THREADS, thread_name_prefix="env-catalog")
        self._catalogs: dict[str, tuple[RegisteredEnv, asyncio.Future]] = {}
        """Environment name -> (the entry, its catalog build): one build per registered entry."""

    def close(self) -> None:
        """Stop the catalog threads (a build under way finishes in the background)."""
        self._catalog_pool.shutdown(wait=False, cancel_futures=True)

    async def _in_pool(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._catalog_pool, function, *args)

    async def catalog_built(self, entry: RegisteredEnv) -> None:
        """Build a python environment's task catalog (both splits) off the event loop, once per
        registered entry; concurrent callers wait for the same build."""
        name = entry.spec.name
        known = self._catalogs.get(name)
        if known is None or known[0] is not entry:  # first use, or the name was registered again
            known = (entry, asyncio.ensure_future(self._in_pool(_build_catalog, entry.catalog)))
            self._catalogs[name] = known
        await asyncio.shield(known[1])  # a caller that gives up does not cancel the others' build

    # --- registry ------------------------------------------------------------

    async def register(self, request: env_pb2.RegisterEnvRequest) -> env_pb2.EnvSpec:
        # Off the event loop: the module is imported in a child process, then here, and the
        # catalog is built; sessions of other clients keep being served meanwhile.
        try:
            return await asyncio.to_thread(self.registry.register, request.spec, replace=request.replace)
        except SpecError as exc:
            raise InvalidArgument(spec_problem_message(exc)) from None
        except EnvExists as exc:
            raise AlreadyExists(str(exc.args[0])) from None

    def unregister(self, name: str) -> None:
        try:
            self.registry.unregister(name)
        except EnvNotFound as exc:
            raise NotFound(str(exc)) from None
        self._catalogs.pop(name, None)

    def _env(self, name: str) -> RegisteredEnv:
        if not name:
            raise InvalidArgument("env: is empty; name a registered environment (see ListEnvs)")
        try:
            return self.registry.get(name)
        except EnvNotFound as exc:
            raise NotFound(str(exc)) from None

    async def list_tasks(self, request: env_pb2.ListTasksRequest) -> env_pb2.ListTasksResponse:
        entry = self._env(request.env)
        limit = request.limit or self.page_size
        if limit > self.page_size * MAX_PAGE_FACTOR:
            raise InvalidArgument(f"limit: {limit} is above the largest page ({self.page_size * MAX_PAGE_FACTOR})")
        if entry.remote:
            return await self.remotes.list_tasks(entry.spec, request)
        if entry.spec.WhichOneof("kind") == "agent":  # the tasks of the environment it plays
            forwarded = env_pb2.ListTasksRequest()
            forwarded.CopyFrom(request)
            forwarded.env = entry.spec.agent.tasks_from
            response = await self.list_tasks(forwarded)
            for task in response.tasks:
                task.env = entry.spec.name
            return response
        try:
            if entry.openenv:
                page, total = openenv.task_page(entry.spec.openenv, request.split or "train", request.offset, limit)
            else:
                await self.catalog_built(entry)
                page, total = await self._in_pool(_task_page, entry.catalog, request.split or "train", request.offset, limit)
        except TaskNotFound as exc:
            raise InvalidArgument(f"split: {exc}") from None
        return env_pb2.ListTasksResponse(
            tasks=[task.to_proto(entry.spec.name, request.include_reference) for task in page], total=total
        )

    # --- sessions ------------------------------------------------------------

    async def create_session(self, request: env_pb2.CreateSessionRequest) -> env_pb2.CreateSessionResponse:
        entry = self._env(request.env)
        if entry.spec.WhichOneof("kind") == "agent":
            raise FailedPrecondition(f"environment {entry.spec.name!r} is an agent program that plays its episodes "
                                     "itself: use RunAgent (docs/agents.md)")
        if not request.task_id:
            raise InvalidArgument("task_id: is empty (see ListTasks for the ids of an environment)")
        try:
            session_id = self.sessions.reserve()
        except SessionLimitReached as exc:
            raise ResourceExhausted(str(exc)) from None
        session = Session(session_id, entry.spec.name, entry.spec)
        if entry.remote:
            remote = await self.remotes.create_session(entry.spec, request.task_id, request.seed)
            if not remote.session_id:
                ENV_ERRORS.labels(entry.spec.name, "remote").inc()
                raise Internal(f"remote environment {entry.spec.name!r} at {entry.spec.remote.address} broke the CreateSession contract: session_id: empty")
            session.remote_id = remote.session_id
            observation = remote.observation
        elif entry.openenv:
            observation = await self._openenv_reset(entry, session, request)
        else:
            observation = await self._reset(entry, session, request)
        try:
            self.sessions.add(session)
        except SessionLimitReached as exc:
            await self.close_backend(session)
            raise ResourceExhausted(str(exc)) from None
        return env_pb2.CreateSessionResponse(session_id=session.id, observation=observation, spec=entry.spec, ttl_s=self.sessions.ttl_s)

    async def _reset(self, entry: RegisteredEnv, session: Session, request) -> env_pb2.Observation:
        name = entry.spec.name
        try:
            await self.catalog_built(entry)  # a first episode would otherwise build it on the loop
        except Exception:  # noqa: BLE001 - the catalog's failure is ListTasks' to report; reset may not need it
            log.warning("environment %s: building its task catalog failed", name, exc_info=True)
        try:
            env = entry.new_instance()
            session.episode = Episode(env, entry.spec.max_turns)
            messages = await session.episode.reset(request.task_id, request.seed)
        except TaskNotFound as exc:
            raise NotFound(f"environment {name!r}: {exc}") from None
        except ParamError as exc:
            raise InvalidArgument(f"environment {name!r}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - an environment failure: counted and reported
            ENV_ERRORS.labels(name, "reset").inc()
            log.warning("environment %s failed to reset task %s", name, request.task_id, exc_info=True)
            if session.episode is not None:
                await session.episode.env.close()
            failure = FailedPrecondition if entry.env_class.needs_sandbox and entry.context.sandbox is None else Internal
            raise failure(f"environment {name!r} failed to start task {request.task_id!r}: {type(exc).__name__}: {exc}") from None
        return env_pb2.Observation(messages=[message.to_proto() for message in messages])

    async def _openenv_reset(self, entry: RegisteredEnv, session: Session, request) -> env_pb2.Observation:
        spec = entry.spec
        try:
            session.openenv, reply = await self.openenvs.reset(spec, request.task_id, request.seed, session.id)
        except TaskNotFound as exc:
            raise NotFound(f"environment {spec.name!r}: {exc}") from None
        except EnvFailure as exc:
            ENV_ERRORS.labels(spec.name, "reset").inc()
            raise Internal(f"{OpenEnvs.where(spec)} failed to start task {request.task_id!r}: {exc}") from None
        except Exception:
            ENV_ERRORS.labels(spec.name, "openenv").inc()
            raise
        messages = openenv.first_messages(spec.openenv, reply)
        return env_pb2.Observation(messages=[message.to_proto() for message in messages])

    def _session(self, session_id: str) -> Session:
        if not session_id:
            raise InvalidArgument("session_id: is empty")
        try:
            return self.sessions.get(session_id)
        except SessionNotFound as exc:
            raise NotFound(str(exc)) from None

    async def step(self, request: env_pb2.StepRequest) -> env_pb2.StepResponse:
        size = len(request.action.text.encode())
        if size > self.max_action_bytes:
            raise InvalidArgument(f"action.text: {size} bytes is above the limit of {self.max_action_bytes} (max_action_bytes)")
        session = self._session(request.session_id)
        async with session.lock:
            if session.done:
                raise FailedPrecondition(f"session {session.id!r} is over (ended at turn {session.turns}); close it and create a new one")
            if session.episode is not None:
                response = self._python_response(session, await session.episode.step(request.action.text))
                response = checked_step(session.spec, response, session.turns, session.total_reward, f"environment {session.env!r}")
            elif session.openenv is not None:
                response = await self._openenv_step(session, request.action.text)
            else:
                response = await self._remote_step(session, request.action)
            session.record(response)
        self._count(session, response)
        return response

    def _python_response(self, session: Session, outcome: EpisodeStep) -> env_pb2.StepResponse:
        response = env_pb2.StepResponse(done=outcome.done, truncated=outcome.truncated, turn=outcome.turn)
        source = f"env:{session.env}"
        if outcome.result is None:
            response.status.CopyFrom(common_pb2.ItemStatus(code=ERROR, message=outcome.error, source=source))
            return response
        result = outcome.result
        response.status.CopyFrom(common_pb2.ItemStatus(code=OK, source=source))
        response.reward = result.reward
        response.observation.messages.extend(message.to_proto() for message in outcome.observation)
        response.info.solved = result.solved
        if result.process_score is not None:
            response.info.process_score = result.process_score
        response.info.metrics.update(result.metrics)
        response.info.tool_calls.extend(call.to_proto(source) for call in result.tool_calls)
        return response

    async def _remote_step(self, session: Session, action: env_pb2.Action) -> env_pb2.StepResponse:
        try:
            response = await self.remotes.step(session.spec, session.remote_id, action)
        except Exception:
            ENV_ERRORS.labels(session.env, "remote").inc()
            raise
        where = f"remote environment {session.env!r} at {session.spec.remote.address}"
        response = checked_step(session.spec, response, session.turns, session.total_reward, where)
        # The registered spec's turn limit applies to remote environments too.
        if not response.done and response.turn >= session.spec.max_turns:
            response.done = response.truncated = True
            response.ClearField("observation")
        return response

    async def _openenv_step(self, session: Session, text: str) -> env_pb2.StepResponse:
        spec, where = session.spec, OpenEnvs.where(session.spec)
        turn, source = session.turns + 1, f"env:{session.env}"
        try:
            reply = await self.openenvs.step(session.openenv, text)
        except EnvFailure as exc:
            failure = common_pb2.ItemStatus(code=ERROR, message=f"{where} failed the step: {exc}", source=source)
            return env_pb2.StepResponse(done=True, status=failure, turn=turn)
        except Exception:
            ENV_ERRORS.labels(session.env, "openenv").inc()
            raise
        reward = reply.reward
        if reward is None and spec.openenv.null_reward_is_zero:
            reward = 0.0
        if reward is None:
            message = f"{where} broke the Step contract: reward: null in the reply (set openenv.null_reward_is_zero if the environment means 0)"
            await self.openenvs.finish(session.openenv)
            return env_pb2.StepResponse(done=True, status=common_pb2.ItemStatus(code=ERROR, message=message, source=source), turn=turn)
        response = env_pb2.StepResponse(done=reply.done, reward=reward, turn=turn, status=common_pb2.ItemStatus(code=OK, source=source))
        if not reply.done:
            response.observation.messages.append(Message("user", openenv.render(spec.openenv, reply.observation)).to_proto())
        response.info.solved = openenv.solved(spec.openenv, reply, reward)
        response.info.metrics.update(reply.metrics())
        response = checked_step(spec, response, session.turns, session.total_reward, where)
        if not response.done and response.turn >= spec.max_turns:
            response.done = response.truncated = True
            response.ClearField("observation")
        if response.done:
            await self.openenvs.finish(session.openenv)
        return response

    def _count(self, session: Session, response: env_pb2.StepResponse) -> None:
        status = common_pb2.ItemStatus.Code.Name(response.status.code)
        STEPS.labels(session.env, status).inc()
        if response.status.code != OK:
            ENV_ERRORS.labels(session.env, "step").inc()
        for call in response.info.tool_calls:
            TOOL_CALLS.labels(session.env, call.name or "?", common_pb2.ItemStatus.Code.Name(call.status.code)).inc()

    async def close_session(self, session_id: str) -> env_pb2.CloseSessionResponse:
        if not session_id:
            raise InvalidArgument("session_id: is empty")
        try:
            session = self.sessions.pop(session_id)
        except SessionNotFound as exc:
            raise NotFound(str(exc)) from None
        async with session.lock:
            await self.close_backend(session)
        return env_pb2.CloseSessionResponse(turns=session.turns, total_reward=session.total_reward, solved=session.solved)

    async def close_backend(self, session: Session) -> None:
        """Release what a session holds: its environment, or its remote session."""
        if session.episode is not None:
            await session.episode.close()
        elif session.remote_id:
            await self.remotes.close_session(session.spec, session.remote_id)
        elif session.openenv is not None:
            await self.openenvs.finish(session.openenv)


def _build_catalog(catalog) -> None:
    """Build both splits (environments cache what they build: the built-ins per parameters)."""
    for split in ("train", "test"):
        try:
            catalog.tasks(split)
        except TaskNotFound:  # an environment without this split
            pass


def _task_page(catalog, split: str, offset: int, limit: int) -> tuple[Sequence, int]:
    """Tasks [offset, offset + limit) of a split and its size (copying a split of 10^6 tasks
    takes ~40 ms: also off the loop)."""
    tasks = catalog.tasks(split)
    return tasks[offset : offset + limit], len(tasks)

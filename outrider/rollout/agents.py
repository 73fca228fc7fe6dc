"""Groups of `agent` environments: the agent programs play, the policy's captures train.

For each of the G episodes: open a captured policy session, ask the env service to run
the agent on the task against it (RunAgent: sandboxed, verified), close the session,
and assemble its recorded calls into trajectories (assembly.py). An episode's first
sequence is its Episode's tokens; the sequences an agent's rewritten history started
travel beside it (`Episode.extra_sequences`) with the same reward.

How the run ended decides what the episode is (envs/agent/runner.py):

    OK               trained; the verifier's reward is the last turn's env reward
    FAILED, TIMEOUT  the agent's own failure: left out (INFRA_FAILURE_AGENT_FAILED), or
                     trained with rollout.agents.failure_reward when that is set
    KILLED, INFRA    infrastructure: left out (INFRA_FAILURE_ENV_ERROR)
    RunAgent error   the env service failed: left out (INFRA_FAILURE_ENV_UNAVAILABLE)
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import grpc

from outrider.config.rollout import RolloutConfig
from outrider.proto.v1 import common_pb2, env_pb2
from outrider.proto.v1.trajectory_pb2 import (
    INFRA_FAILURE_AGENT_FAILED,
    INFRA_FAILURE_ENV_ERROR,
    INFRA_FAILURE_ENV_UNAVAILABLE,
)
from outrider.rollout.assembly import assemble
from outrider.rollout.episodes import Episode
from outrider.transport.capture import CaptureStore

log = logging.getLogger(__name__)

_OWN_FAILURES = (env_pb2.AGENT_OUTCOME_FAILED, env_pb2.AGENT_OUTCOME_TIMEOUT)


class AgentPlayer:
    """Plays groups of agent environments (the same `play` as GroupPlayer's)."""

    def __init__(self, env, store: CaptureStore, cfg: RolloutConfig, model: str = ""):
        self.env = env
        self.store = store
        self.cfg = cfg
        self.model = model
        self.seconds: dict[str, float] = defaultdict(float)
        self.generations: list[tuple[float, float, int]] = []
        self.reports: list[str] = []
        """Per episode of the last `play`: its assembly summary (calls, sequences, breaks)."""

    def play(self, task: common_pb2.Task, size: int | None = None, seed: int = 0, **_) -> list[Episode]:
        size = size or self.cfg.group_size
        self.seconds, self.generations, self.reports = defaultdict(float), [], [""] * size
        started = time.perf_counter()
        with ThreadPoolExecutor(self.cfg.agents.concurrency or size, thread_name_prefix="agent") as pool:
            episodes = list(pool.map(lambda i: self._episode(task, i, seed + i), range(size)))
        self.seconds["env"] = time.perf_counter() - started
        return episodes

    def _episode(self, task: common_pb2.Task, index: int, seed: int) -> Episode:
        episode = Episode(index=index)
        session = self.store.open(label=f"{task.env}/{task.id}/seed-{seed}")
        try:
            reply = self.env.run_agent(task.env, task.id, session, seed=seed, model=self.model,
                                       timeout_s=self.cfg.agents.run_timeout_s)
        except grpc.RpcError as exc:
            episode.fail(INFRA_FAILURE_ENV_UNAVAILABLE, f"RunAgent: {exc.code().name}: {exc.details()}")
            reply = None
        finally:
            self.store.close(session)
        sequences, report = assemble(self.store.calls(session), f"{task.env}/{task.id}/{index}")
        self.reports[index] = report.summary()
        if sequences:
            first = sequences[0]
            episode.token_ids, episode.logprobs = list(first.token_ids), list(first.logprobs)
            episode.loss_mask, episode.prompt_length = list(first.loss_mask), first.prompt_length
            episode.turns = list(first.turns)
            episode.extra_sequences = sequences[1:]
        if reply is None:
            return episode
        episode.messages = [*reply.task_messages, common_pb2.ChatMessage(role="assistant", content=reply.output)]
        episode.done = True
        if not sequences:
            episode.fail(INFRA_FAILURE_AGENT_FAILED, "the agent made no policy call: nothing to train on")
        elif reply.outcome == env_pb2.AGENT_OUTCOME_OK:
            episode.turns[-1].env_reward = reply.reward
            episode.solved = reply.solved
        elif reply.outcome in _OWN_FAILURES and self.cfg.agents.failure_reward is not None:
            episode.turns[-1].env_reward = self.cfg.agents.failure_reward
            episode.agent_failure = reply.message
        elif reply.outcome in _OWN_FAILURES:
            episode.fail(INFRA_FAILURE_AGENT_FAILED, f"agent: {reply.message}")
        else:
            episode.fail(INFRA_FAILURE_ENV_ERROR, f"agent: {reply.message}")
        return episode

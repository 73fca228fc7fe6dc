"""Search rollouts (`rollout.search`): the pure search of search.py against the real services.

    policy  ── Generate(n = k, stop = [delimiter])  proposes next steps (PolicyProposer)
    reward  ── ScoreSteps(BY_DELIMITER)             values prefixes with the PRM (PRMScorer)
    env     ── CreateSession / Step                  the task's prompt, and each kept trajectory's outcome

A search episode is one assistant turn written step by step. The step delimiter is
`rollout.search.delimiter`, or else the reward service's own segmentation delimiter
(GetInfo), so a step of the search is a step of the PRM; the PRM request names it
explicitly (Segmentation BY_DELIMITER) whatever the service's default. Token ids stay
exactly as sampled: each proposal continues the prompt's ids plus its prefix's ids, and a
trajectory's completion is the concatenation of its steps' ids (loss mask 1, their
log-probs; one Turn with one Segment per step recording the version that sampled it).

A step ends at the delimiter (the search goes on), at end of sequence (finished), or at
its token limit: min(search.step_tokens, the budget share, the turn's room). The turn's
room is sampling.max_tokens and max_episode_tokens less the prompt, and a step that fills
it finishes the trajectory.

The group is the search's `trajectories` (rollout.search.width of them at most; group_size
is not used): each is stepped in its own env session with the same seed as the search's
(the same task instance) for its outcome reward, and rewards are then assigned as for any
group (rewards.py). A prefix whose text is blank has no step the PRM could score: its
value is 0, the bottom of s_t ∈ [0, 1]. A PRM item that is not OK, or a failed reward call,
fails the search (no trajectory is made up); a failed Generate raises, and the worker's
task is retried, as for plain groups.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import nullcontext

import grpc

from outrider.config.rollout import RolloutConfig
from outrider.proto.v1 import common_pb2, policy_pb2, reward_pb2, trajectory_pb2
from outrider.proto.v1.common_pb2 import ChatMessage, FinishReason, ItemStatus
from outrider.proto.v1.trajectory_pb2 import (
    INFRA_FAILURE_ENV_ERROR,
    INFRA_FAILURE_ENV_UNAVAILABLE,
    INFRA_FAILURE_POLICY_TIMEOUT,
    INFRA_FAILURE_REWARD_ERROR,
)
from outrider.rollout.episodes import Episode, sampling_args, sampling_support, step_reply_problem, timed_into
from outrider.rollout.search import Prefix, SearchResult, Step, search

log = logging.getLogger(__name__)

DEFAULT_DELIMITER = "\n\n"

# How a prefix's per-step PRM scores s_1..s_T become its one value.
AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "last": lambda s: s[-1],  # s_T: the PRM's view of the whole prefix (Snell et al. 2024 found it best)
    "min": min,  # the weakest step decides
    "mean": lambda s: sum(s) / len(s),
}


class SearchError(RuntimeError):
    """The search cannot go on (a PRM item failed, a completion was aborted)."""

    def __init__(self, message: str, failure: int = INFRA_FAILURE_REWARD_ERROR):
        super().__init__(message)
        self.failure = failure


def _ids(prefix: Prefix) -> list[int]:
    return [t for step in prefix for t in step.token_ids]


class PolicyProposer:
    """Proposer over the policy service: one Generate (n = k) and one Detokenize per call."""

    def __init__(self, policy, prompt_ids: Sequence[int], cfg: RolloutConfig, delimiter: str, timed=None):
        self.policy, self.prompt_ids, self.cfg, self.delimiter = policy, list(prompt_ids), cfg, delimiter
        self.room = min(cfg.sampling.max_tokens, cfg.max_episode_tokens - len(self.prompt_ids))
        if self.room < 1:
            raise SearchError(
                f"the prompt's {len(self.prompt_ids)} tokens leave no room within max_episode_tokens={cfg.max_episode_tokens}",
                INFRA_FAILURE_ENV_ERROR,
            )
        self.timed = timed or (lambda _service: nullcontext())  # timed(service): a context that times the call
        self.generations: list[tuple[float, float, int]] = []

    def propose(self, prefixes: Sequence[Prefix], k: int, max_tokens: int) -> list[list[Step]]:
        used = [len(_ids(p)) for p in prefixes]
        limit = min(max_tokens, self.cfg.search.step_tokens, *(self.room - u for u in used))
        prompts = [policy_pb2.Prompt(token_ids=common_pb2.TokenIds(ids=self.prompt_ids + _ids(p))) for p in prefixes]
        sampling = sampling_args(self.cfg, limit, n=k) | {"stop": [self.delimiter]}
        started = time.time()
        with self.timed("policy"):
            reply = self.policy.generate(prompts, **sampling)
        self.generations.append((started, time.time(), len(prefixes) * k))
        completions = [list(result.completions) for result in reply.results]
        # Text from the ids of the whole completion (tokens are the truth; a step's text is
        # what its ids add to its prefix's), all children in one call.
        full = [_ids(p) + list(c.token_ids) for p, cs in zip(prefixes, completions) for c in cs]
        with self.timed("policy"):
            texts = iter(self.policy.detokenize(full))
        support = sampling_support(self.cfg)
        out = []
        for prefix, room_used, cs in zip(prefixes, used, completions, strict=True):
            before = "".join(step.text for step in prefix)
            steps = []
            for c in cs:
                if c.finish_reason not in (FinishReason.FINISH_REASON_STOP, FinishReason.FINISH_REASON_LENGTH):
                    raise SearchError(f"a completion ended with {FinishReason.Name(c.finish_reason)}", INFRA_FAILURE_POLICY_TIMEOUT)
                ids, text = list(c.token_ids), next(texts)
                # A character straddling the step boundary changes the prefix's last character:
                # then the step's own text is the best there is.
                text = text[len(before):] if text.startswith(before) else c.text + c.stop_string
                eos = c.finish_reason == FinishReason.FINISH_REASON_STOP and not c.stop_string
                full_turn = room_used + len(ids) >= self.room
                truncated = support is not None and len(c.support_logprobs) == len(ids)
                logprobs = tuple(c.support_logprobs if truncated else c.logprobs)
                steps.append(Step(tuple(ids), text, eos or full_turn, logprobs, (c.finish_reason, reply.policy_version)))
            out.append(steps)
        return out


class PRMScorer:
    """Scorer over the reward service's PRM: one ScoreSteps per call, the prefix's value is
    `aggregate` of its step scores."""

    def __init__(self, reward, task: common_pb2.Task, messages: Sequence[ChatMessage], delimiter: str, aggregate: str, timed=None):
        self.reward, self.task, self.messages = reward, task, list(messages)
        self.segmentation = reward_pb2.Segmentation(mode=reward_pb2.Segmentation.BY_DELIMITER, delimiter=delimiter)
        self.aggregate = AGGREGATES[aggregate]
        self.timed = timed or (lambda _service: nullcontext())  # timed(service): a context that times the call

    def score(self, prefixes: Sequence[Prefix]) -> list[float]:
        texts = ["".join(step.text for step in p) for p in prefixes]
        asked = [i for i, text in enumerate(texts) if text.strip()]
        values = [0.0] * len(prefixes)
        if not asked:
            return values
        items = [
            reward_pb2.StepsItem(
                id=str(i), env=self.task.env, task_id=self.task.id, segmentation=self.segmentation,
                conversation=[*self.messages, ChatMessage(role="assistant", content=texts[i])],
            )
            for i in asked
        ]
        try:
            with self.timed("reward"):
                results = self.reward.score_steps(items)
        except grpc.RpcError as exc:
            raise SearchError(f"reward ScoreSteps: {exc.code().name}: {exc.details()}") from exc
        for i, result in zip(asked, results, strict=True):
            if result.status.code != ItemStatus.OK or not result.scores:
                raise SearchError(f"PRM {ItemStatus.Code.Name(result.status.code)}: {result.status.message}")
            values[i] = float(self.aggregate(list(result.scores)))
        return values


class SearchPlayer:
    """Plays one search per group (GroupPlayer's `play` signature, so the worker treats both alike)."""

    def __init__(self, policy, env, reward, cfg: RolloutConfig):
        if reward is None:
            raise ValueError("rollout.search needs the reward service (its PRM values the prefixes)")
        self.policy, self.env, self.reward, self.cfg = policy, env, reward, cfg
        self.delimiter = cfg.search.delimiter or self._service_delimiter()
        self.seconds: dict[str, float] = defaultdict(float)
        self.generations: list[tuple[float, float, int]] = []
        self.search: dict = {}
        """The last play's search: mode, compute (search.Compute), the best trajectory's index, values."""

    def _service_delimiter(self) -> str:
        segmentation = self.reward.info().segmentation
        if segmentation.mode == reward_pb2.Segmentation.BY_DELIMITER and segmentation.delimiter:
            return segmentation.delimiter
        return DEFAULT_DELIMITER

    def _timed(self, service: str):
        return timed_into(self.seconds, service)

    def play(self, task: common_pb2.Task, size: int | None = None, seed: int = 0, *, resume=None, park=None) -> list[Episode]:
        """Search `task` once; the episodes are the search's trajectories (rewards assigned later).
        `size`, `resume` and `park` are GroupPlayer's: a search is not parked or resized."""
        if resume:
            raise ValueError("search rollouts are not parked, so there is nothing to resume")
        self.seconds, self.generations, self.search = defaultdict(float), [], {}
        try:
            with self._timed("env"):
                first = self.env.create_session(task.env, task.id, seed=seed)
        except grpc.RpcError as exc:
            return [_failed(INFRA_FAILURE_ENV_UNAVAILABLE, f"CreateSession: {exc.code().name}: {exc.details()}")]
        sessions = [first.session_id]
        try:
            messages = list(first.observation.messages)
            with self._timed("policy"):
                prompt = list(self.policy.apply_chat_template([common_pb2.Conversation(messages=messages, add_generation_prompt=True)]).tokens[0].ids)
            try:
                result = self._search(task, messages, prompt)
            except SearchError as exc:
                return [_failed(exc.failure, f"search: {exc}")]
            episodes = [self._episode(i, task, seed, messages, prompt, t, sessions) for i, t in enumerate(result.trajectories)]
        finally:
            for session in sessions:
                self._close(session)
        self.search = {
            "mode": self.cfg.search.mode,
            **result.compute.as_dict(),
            "best": next(i for i, t in enumerate(result.trajectories) if t is result.best),
            "values": [round(t.value, 6) for t in result.trajectories],
            "steps": [len(t.steps) for t in result.trajectories],
        }
        return episodes

    def _search(self, task, messages, prompt) -> SearchResult:
        s = self.cfg.search
        proposer = PolicyProposer(self.policy, prompt, self.cfg, self.delimiter, self._timed)
        scorer = PRMScorer(self.reward, task, messages, self.delimiter, s.aggregate, self._timed)
        try:
            return search(s.mode, proposer, scorer, width=s.width, expansions=s.expansions, max_steps=s.max_steps,
                          token_budget=s.token_budget, ucb_c=s.ucb_c, simulations=s.simulations)
        finally:
            self.generations = proposer.generations

    def _episode(self, index, task, seed, messages, prompt, trajectory, sessions: list[str]) -> Episode:
        """The trajectory as an Episode, stepped in an env session of its own (the search's
        for the first) for its outcome."""
        ids = trajectory.token_ids
        episode = Episode(index=index, messages=[*messages], prompt_length=len(prompt))
        episode.token_ids = prompt + ids
        episode.logprobs = [0.0] * len(prompt) + [lp for step in trajectory.steps for lp in step.logprobs]
        episode.loss_mask = [False] * len(prompt) + [True] * len(ids)
        versions = [step.info[1] for step in trajectory.steps]
        turn = trajectory_pb2.Turn(
            start=len(prompt), completion_length=len(ids), policy_version=versions[0],
            finish_reason=trajectory.steps[-1].info[0], sampling=sampling_support(self.cfg),
            segments=[trajectory_pb2.Segment(length=len(s.token_ids), policy_version=v) for s, v in zip(trajectory.steps, versions)],
        )
        episode.turns.append(turn)
        episode.messages.append(ChatMessage(role="assistant", content=trajectory.text))
        episode.done = True
        try:
            if index == 0:
                episode.session_id = sessions[0]
            else:
                with self._timed("env"):
                    reply = self.env.create_session(task.env, task.id, seed=seed)
                sessions.append(reply.session_id)
                episode.session_id = reply.session_id
                if list(reply.observation.messages) != messages:
                    episode.fail(INFRA_FAILURE_ENV_ERROR, "the environment's first observation differs from the searched one")
                    return episode
            with self._timed("env"):
                reply = self.env.step(episode.session_id, trajectory.text, ids)
        except grpc.RpcError as exc:
            episode.fail(INFRA_FAILURE_ENV_UNAVAILABLE, f"env: {exc.code().name}: {exc.details()}")
            return episode
        if problem := step_reply_problem(reply):
            episode.fail(INFRA_FAILURE_ENV_ERROR, problem)
            return episode
        turn = episode.turns[0]
        turn.env_reward = reply.reward
        episode.process_scores.append(reply.info.process_score if reply.info.HasField("process_score") else None)
        episode.solved = reply.info.solved
        # Ended by the search, not by the environment (one turn; a multi-turn env wanted more),
        # or the last step used up the turn's tokens.
        episode.truncated = not reply.done or turn.finish_reason == FinishReason.FINISH_REASON_LENGTH
        return episode

    def _close(self, session_id: str) -> None:
        try:
            with self._timed("env"):
                self.env.close_session(session_id)
        except grpc.RpcError as exc:
            log.warning("CloseSession %s: %s", session_id, exc.code().name)


def _failed(failure: int, error: str) -> Episode:
    episode = Episode(index=0)
    episode.fail(failure, error)
    return episode

"""Playing a group of multi-turn episodes of one task, token-in/token-out.

The G episodes of a group advance in lockstep: each turn, one batched
Generate call for every episode still running (the first turn, where all
share the prompt, is one prompt with n = G), then one env Step per episode.

Token bookkeeping (trajectory.proto): the trajectory's token ids are the
chat-templated prompt, then per turn the completion ids exactly as sampled
(loss mask 1, their logprobs) and the environment's reply rendered by
`ObservationTokens` (loss mask 0). An episode that infrastructure cuts short
(the environment raises, a service cannot be reached, the reward cannot be
computed) is never given a made-up reward: it keeps its tokens, its error and
a typed `infra_failure`, and the learner leaves it out of its group's
statistics and of the loss. A failed Generate call is not such a failure: it
hits every running episode of the group at once, and keeping only the episodes
that had already finished would keep the short ones, so the whole group is
retried (worker.py).

Partial rollouts (partial.py, `rollout.partial`): with a `park` callback, each
Generate call samples at most `segment_tokens`; a completion cut there (its
turn's own budget not used up) leaves its episode `open` and waiting, and when
every running episode waits the group is parked or, if the park refuses, goes
on at once. A turn continued over several calls records one Segment per call
with the version that sampled it. Repetition early stop (`rollout.repetition`,
repetition.py) checks each turn's completion after every call.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc

from outrider.config.rollout import RolloutConfig
from outrider.proto.v1 import common_pb2, policy_pb2, trajectory_pb2
from outrider.proto.v1.common_pb2 import ChatMessage, FinishReason, ItemStatus
from outrider.proto.v1.trajectory_pb2 import (
    INFRA_FAILURE_ENV_ERROR,
    INFRA_FAILURE_ENV_UNAVAILABLE,
    INFRA_FAILURE_NONE,
)
from outrider.rollout.repetition import find_repetition
from outrider.rollout.tokens import ObservationTokens

log = logging.getLogger(__name__)


@dataclass
class Episode:
    index: int
    session_id: str = ""
    messages: list[ChatMessage] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    loss_mask: list[bool] = field(default_factory=list)
    prompt_length: int = 0
    turns: list[trajectory_pb2.Turn] = field(default_factory=list)
    process_scores: list[float | None] = field(default_factory=list)
    done: bool = False
    truncated: bool = False
    solved: bool = False
    error: str = ""
    failure: int = INFRA_FAILURE_NONE
    """trajectory_pb2.InfraFailure of `error`: which part of the infrastructure failed."""
    outcome_reward: float = 0.0
    step_rewards: list[trajectory_pb2.StepReward] = field(default_factory=list)
    reward_components: list[common_pb2.RewardComponent] = field(default_factory=list)
    """The reward's named parts from the reward service (rewards.py)."""
    open: bool = False
    """Its last turn's completion was cut at the segment budget and is not finished yet."""
    waiting: bool = False
    """Open, and not to be continued in this task before the group is parked or goes on."""
    repetition: trajectory_pb2.RepetitionStop | None = None
    """Set when the episode was stopped for repeating an n-gram (rollout.repetition)."""
    extra_sequences: list[trajectory_pb2.Trajectory] = field(default_factory=list)
    """Agent episodes (agents.py): the further sequences of an agent that rewrote its
    history; they get the episode's reward and status."""
    agent_failure: str = ""
    """Agent episodes: the agent's own failure, trained with rollout.agents.failure_reward."""

    @property
    def running(self) -> bool:
        return not self.done and not self.error

    @property
    def finished_turns(self) -> int:
        return len(self.turns) - self.open

    def fail(self, failure: int, error: str) -> None:
        """End the episode for an infrastructure failure (the first one is kept)."""
        if not self.error:
            self.error, self.failure = error, failure


@dataclass
class GroupResult:
    """A finished group, ready for the bus, and what went wrong on the way."""

    group: trajectory_pb2.TrajectoryGroup
    episodes: list[Episode]
    errors: list[str]
    """One message per episode dropped for an error."""


def sampling_args(cfg: RolloutConfig, max_tokens: int, n: int = 1) -> dict:
    """The policy client's Generate arguments for `n` samples of at most `max_tokens` each."""
    sampling = cfg.sampling
    params = {"n": n, "temperature": sampling.temperature, "top_p": sampling.top_p, "max_tokens": max_tokens}
    if sampling.top_k:
        params["top_k"] = sampling.top_k
    return params


def sampling_support(cfg: RolloutConfig) -> trajectory_pb2.SamplingSupport | None:
    """The turn's truncated support, for the learner to take log-probs over (None: full vocabulary)."""
    sampling = cfg.sampling
    if sampling.temperature > 0 and (sampling.top_k > 0 or sampling.top_p < 1):
        return trajectory_pb2.SamplingSupport(temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p)
    return None


@contextmanager
def timed_into(seconds: dict[str, float], service: str):
    """Adds the wall seconds of the `with` body to `seconds[service]` (a player's time
    waiting on each service, the rollout part of the step-time breakdown)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds[service] += time.perf_counter() - started


class GroupPlayer:
    """Plays groups against a policy service and an env service."""

    def __init__(self, policy, env, cfg: RolloutConfig):
        self.policy = policy
        self.env = env
        self.cfg = cfg
        self.observations = ObservationTokens(policy)
        self.segment: int | None = None  # rollout.partial.segment_tokens while playing with a park
        self.eos_ids = set(policy.info().eos_token_ids)
        # Seconds the last `play` spent waiting on each service ("policy", "env"):
        # the rollout part of the training step-time breakdown. One player per
        # thread for these to mean anything (evaluation shares one and ignores them).
        self.seconds: dict[str, float] = defaultdict(float)
        # The last `play`'s Generate calls as (started, finished) unix times and
        # the sequences each sampled: what the bench turns into sequences in flight.
        self.generations: list[tuple[float, float, int]] = []

    def _timed(self, service: str):
        return timed_into(self.seconds, service)

    def play(
        self,
        task: common_pb2.Task,
        size: int | None = None,
        seed: int = 0,
        *,
        resume: list[Episode] | None = None,
        park: Callable[[list[Episode]], bool] | None = None,
    ) -> list[Episode]:
        """Play `size` (default G) episodes of `task` to the end; rewards are assigned later.

        `park` (training rollouts with `rollout.partial.segment_tokens` set): called when every
        running episode waits on a completion cut at the segment budget; True means the group
        was stored, and play returns with those episodes `open`; False: they go on now.
        `resume`: the episodes of a parked group, played on from where they were."""
        self.segment = self.cfg.partial.segment_tokens if park is not None else None
        episodes = resume if resume is not None else [Episode(index=i) for i in range(size or self.cfg.group_size)]
        self.seconds = defaultdict(float)
        self.generations = []
        try:
            if resume is None:
                self._start(task, episodes, seed)
            else:
                self._reopen(task, episodes, seed)
            while True:
                while active := [e for e in episodes if e.running and not e.waiting]:
                    self._turn(active)
                waiting = [e for e in episodes if e.running and e.waiting]
                if not waiting or park(episodes):
                    break
                for episode in waiting:
                    episode.waiting = False
        finally:
            # A parked group's sessions close too: a resume opens new ones and replays.
            for episode in episodes:
                if episode.session_id:
                    self._close(episode)
                    episode.session_id = ""
        return episodes

    def _start(self, task: common_pb2.Task, episodes: list[Episode], seed: int) -> None:
        for episode in episodes:
            try:
                with self._timed("env"):
                    reply = self.env.create_session(task.env, task.id, seed=seed + episode.index)
            except grpc.RpcError as exc:
                episode.fail(INFRA_FAILURE_ENV_UNAVAILABLE, f"CreateSession: {exc.code().name}: {exc.details()}")
                continue
            episode.session_id = reply.session_id
            episode.messages = list(reply.observation.messages)
        started = [e for e in episodes if not e.error]
        if not started:
            return
        with self._timed("policy"):
            rendered = self.policy.apply_chat_template(
                [common_pb2.Conversation(messages=e.messages, add_generation_prompt=True) for e in started]
            )
        for episode, ids in zip(started, rendered.tokens):
            episode.token_ids = list(ids.ids)
            episode.logprobs = [0.0] * len(episode.token_ids)
            episode.loss_mask = [False] * len(episode.token_ids)
            episode.prompt_length = len(episode.token_ids)

    def _reopen(self, task: common_pb2.Task, episodes: list[Episode], seed: int) -> None:
        """New sessions for a parked group's running episodes, brought to where they were by
        replaying their finished turns' actions; an environment that answers differently
        than it did fails the episode (it cannot be continued)."""
        for episode in episodes:
            if not episode.running:
                continue
            try:
                with self._timed("env"):
                    reply = self.env.create_session(task.env, task.id, seed=seed + episode.index)
                episode.session_id = reply.session_id
                problem = self._replay(episode, list(reply.observation.messages))
            except grpc.RpcError as exc:
                episode.fail(INFRA_FAILURE_ENV_UNAVAILABLE, f"resume: {exc.code().name}: {exc.details()}")
                continue
            if problem:
                episode.fail(INFRA_FAILURE_ENV_ERROR, f"resume: the environment does not replay: {problem}")

    def _replay(self, episode: Episode, first: list[ChatMessage]) -> str | None:
        recorded = episode.messages
        if recorded[: len(first)] != first:
            return "its first observation differs"
        position = len(first)
        for index, turn in enumerate(episode.turns[: episode.finished_turns]):
            if position >= len(recorded) or recorded[position].role != "assistant":
                return f"turn {index} has no assistant reply on record"
            ids = episode.token_ids[turn.start : turn.start + turn.completion_length]
            with self._timed("env"):
                reply = self.env.step(episode.session_id, recorded[position].content, ids)
            if problem := step_reply_problem(reply):
                return f"turn {index}: {problem}"
            answer = list(reply.observation.messages)
            if reply.done or reply.reward != turn.env_reward or recorded[position + 1 : position + 1 + len(answer)] != answer:
                return f"turn {index} is answered differently"
            position += 1 + len(answer)
        return None if position == len(recorded) else "the conversation has messages the replay did not give"

    def _allowance(self, episode: Episode) -> int:
        """New tokens the episode may still sample in its current (or next) turn."""
        in_turn = episode.turns[-1].completion_length if episode.open else 0
        return min(self.cfg.sampling.max_tokens - in_turn, self.cfg.max_episode_tokens - len(episode.token_ids))

    def _turn(self, running: list[Episode]) -> None:
        budget = self.cfg.max_episode_tokens
        for episode in running:
            over_turns = self.cfg.max_turns is not None and episode.finished_turns >= self.cfg.max_turns
            if not episode.open and (len(episode.token_ids) >= budget or over_turns):
                episode.done = episode.truncated = True
        running = [e for e in running if not e.done]
        if not running:
            return
        allowances = [self._allowance(e) for e in running]
        max_tokens = min(allowances) if self.segment is None else min(*allowances, self.segment)
        same_prompt = len({tuple(e.token_ids) for e in running}) == 1
        started = time.time()
        if same_prompt:
            prompts = [policy_pb2.Prompt(token_ids=common_pb2.TokenIds(ids=running[0].token_ids))]
            with self._timed("policy"):
                reply = self.policy.generate(prompts, **sampling_args(self.cfg, max_tokens, n=len(running)))
            completions = list(reply.results[0].completions)
        else:
            prompts = [policy_pb2.Prompt(token_ids=common_pb2.TokenIds(ids=e.token_ids)) for e in running]
            with self._timed("policy"):
                reply = self.policy.generate(prompts, **sampling_args(self.cfg, max_tokens))
            completions = [result.completions[0] for result in reply.results]
        self.generations.append((started, time.time(), len(running)))
        ended = []
        for episode, completion, allowed in zip(running, completions, allowances, strict=True):
            continued = self._append(episode, completion, reply.policy_version)
            # Cut by this call's budget, not by the turn's own: the completion goes on later.
            # (A shorter length stop is the engine's own, e.g. its context: the turn ends.)
            cut = (
                self.segment is not None
                and completion.finish_reason == FinishReason.FINISH_REASON_LENGTH
                and len(completion.token_ids) == max_tokens < allowed
            )
            if self._repeats(episode):
                episode.done = episode.truncated = True
                episode.open = episode.waiting = False
            elif cut:
                episode.open = episode.waiting = True
                continue
            else:
                episode.open = False
            ended.append((episode, completion.text, continued))
        texts = self._texts(ended)
        replies = []
        for (episode, _, _), text in zip(ended, texts, strict=True):
            turn = episode.turns[-1]
            if len(turn.segments) == 1:
                turn.ClearField("segments")  # sampled in one call: Turn.policy_version says it all
            episode.messages.append(ChatMessage(role="assistant", content=text))
            if episode.running:
                replies.append(self._step(episode, turn, text))
        pending = [r for r in replies if r is not None]
        if not pending:
            return
        with self._timed("policy"):  # renders the replies with the policy's chat template, all at once
            observations = self.observations.after_completions([(end, messages) for _, _, end, messages in pending])
        for (episode, turn, _, _), observation in zip(pending, observations, strict=True):
            turn.observation_length = len(observation)
            episode.token_ids += observation
            episode.logprobs += [0.0] * len(observation)
            episode.loss_mask += [False] * len(observation)

    def _append(self, episode: Episode, completion: policy_pb2.Completion, version: int) -> bool:
        """Append the sampled tokens to the episode's open turn (True) or to a new turn."""
        ids = list(completion.token_ids)
        continued = episode.open
        if continued:
            turn = episode.turns[-1]
            turn.completion_length += len(ids)
            turn.finish_reason = completion.finish_reason
        else:
            turn = trajectory_pb2.Turn(
                start=len(episode.token_ids),
                completion_length=len(ids),
                policy_version=version,
                finish_reason=completion.finish_reason,
                sampling=sampling_support(self.cfg),
            )
            episode.turns.append(turn)
        if self.segment is not None:
            turn.segments.append(trajectory_pb2.Segment(length=len(ids), policy_version=version))
        episode.token_ids += ids
        # A truncated turn is trained over its support (Turn.sampling): record the sampler's
        # log-probs over it where the backend reports them, else the full-vocabulary ones.
        truncated = turn.HasField("sampling") and len(completion.support_logprobs) == len(ids)
        episode.logprobs += list(completion.support_logprobs if truncated else completion.logprobs)
        episode.loss_mask += [True] * len(ids)
        return continued

    def _repeats(self, episode: Episode) -> bool:
        """Stop the episode when its current turn's completion repeats an n-gram too often."""
        rule = self.cfg.repetition
        if rule is None:
            return False
        turn = episode.turns[-1]
        found = find_repetition(episode.token_ids[turn.start : turn.start + turn.completion_length], rule.ngram, rule.max_repeats)
        if found is None:
            return False
        episode.repetition = trajectory_pb2.RepetitionStop(turn_index=len(episode.turns) - 1, ngram=found.ngram, count=found.count)
        return True

    def _texts(self, ended: list[tuple[Episode, str, bool]]) -> list[str]:
        """Each ended turn's completion text: the Generate reply's, or, for a turn sampled over
        several calls, its ids detokenized at once (segment texts do not concatenate where a
        character's bytes straddle a cut); one Detokenize for the group."""
        joined = [i for i, (_, _, continued) in enumerate(ended) if continued]
        texts = [text for _, text, _ in ended]
        if joined:
            spans = []
            for i in joined:
                episode, turn = ended[i][0], ended[i][0].turns[-1]
                spans.append(episode.token_ids[turn.start : turn.start + turn.completion_length])
            with self._timed("policy"):
                for i, text in zip(joined, self.policy.detokenize(spans), strict=True):
                    texts[i] = text
        return texts

    def _step(
        self, episode: Episode, turn: trajectory_pb2.Turn, text: str
    ) -> tuple[Episode, trajectory_pb2.Turn, int | None, list[ChatMessage]] | None:
        """Step the environment with the finished turn; returns what still has to be rendered
        as tokens (the episode, its turn, the end token, the env's messages), or None when the
        episode ended or failed."""
        ids = episode.token_ids[turn.start : turn.start + turn.completion_length]
        try:
            with self._timed("env"):
                reply = self.env.step(episode.session_id, text, ids)
        except grpc.RpcError as exc:
            # The turn was sampled: it stays on record (its tokens are in token_ids).
            episode.fail(INFRA_FAILURE_ENV_UNAVAILABLE, f"Step: {exc.code().name}: {exc.details()}")
            return None
        if problem := step_reply_problem(reply):
            episode.fail(INFRA_FAILURE_ENV_ERROR, problem)
            return None
        turn.env_reward = reply.reward
        episode.process_scores.append(reply.info.process_score if reply.info.HasField("process_score") else None)
        episode.solved = episode.solved or reply.info.solved
        if reply.done:
            episode.done, episode.truncated = True, reply.truncated
            return None
        new_messages = list(reply.observation.messages)
        episode.messages += new_messages
        ended_on_eos = turn.finish_reason == FinishReason.FINISH_REASON_STOP and ids and ids[-1] in self.eos_ids
        return episode, turn, ids[-1] if ended_on_eos else None, new_messages

    def _close(self, episode: Episode) -> None:
        try:
            with self._timed("env"):
                self.env.close_session(episode.session_id)
        except grpc.RpcError as exc:
            # The session expires on its own (TTL); the episode's data is complete.
            log.warning("CloseSession %s: %s", episode.session_id, exc.code().name)



def step_reply_problem(reply) -> str | None:
    """Why a Step reply cannot be trained on (None: status OK with a reward). An unset
    status or a missing reward is a failure, never a reward of 0."""
    if reply.status.code == ItemStatus.CODE_UNSPECIFIED:
        return "env Step: the reply has no status"
    if reply.status.code != ItemStatus.OK:
        return f"env {ItemStatus.Code.Name(reply.status.code)}: {reply.status.message}"
    if not reply.HasField("reward"):
        return "env Step: status OK without a reward"
    return None


def _status(episode: Episode) -> ItemStatus:
    if episode.agent_failure and not episode.error:
        return ItemStatus(code=ItemStatus.ERROR, message=episode.agent_failure, source="agent")
    if not episode.error:
        return ItemStatus(code=ItemStatus.OK)
    source = trajectory_pb2.InfraFailure.Name(episode.failure).removeprefix("INFRA_FAILURE_").lower()
    return ItemStatus(code=ItemStatus.ERROR, message=episode.error, source=source)


def trajectory_of(episode: Episode, trajectory_id: str = "") -> trajectory_pb2.Trajectory:
    """The episode as a Trajectory: what the bus carries, and the stored form of a parked
    episode (outcome_reward and step_rewards are 0 and empty until the group ends)."""
    return trajectory_pb2.Trajectory(
        trajectory_id=trajectory_id,
        prompt_length=episode.prompt_length,
        token_ids=episode.token_ids,
        logprobs=episode.logprobs,
        loss_mask=episode.loss_mask,
        turns=episode.turns,
        outcome_reward=episode.outcome_reward,
        step_rewards=episode.step_rewards,
        reward_components=episode.reward_components,
        truncated=episode.truncated,
        solved=episode.solved,
        status=_status(episode),
        infra_failure=episode.failure if episode.error else INFRA_FAILURE_NONE,
        repetition=episode.repetition,
    )


def build_group(task: common_pb2.Task, group_id: str, episodes: list[Episode]) -> GroupResult:
    """The TrajectoryGroup of the episodes that played at least one turn, the ones that
    infrastructure cut short flagged with their `infra_failure` (an episode that failed
    before its first turn has nothing to record: it is only in `errors`)."""
    group = trajectory_pb2.TrajectoryGroup(group_id=group_id, env=task.env, task_id=task.id)
    errors = [f"episode {e.index}: {e.error}" for e in episodes if e.error]
    for episode in episodes:
        if episode.turns:
            group.trajectories.append(trajectory_of(episode, f"{group_id}/{episode.index}"))
        for k, sequence in enumerate(episode.extra_sequences, start=1):
            # A sequence the agent's rewritten history started: the episode's reward and status.
            extra = trajectory_of(episode, f"{group_id}/{episode.index}#{k}")
            for name in ("prompt_length", "token_ids", "logprobs", "loss_mask", "turns"):
                extra.ClearField(name)
            extra.prompt_length = sequence.prompt_length
            extra.token_ids.extend(sequence.token_ids)
            extra.logprobs.extend(sequence.logprobs)
            extra.loss_mask.extend(sequence.loss_mask)
            extra.turns.extend(sequence.turns)
            extra.ClearField("step_rewards")  # they point into the first sequence's tokens
            group.trajectories.append(extra)
    # Turn.policy_version is a turn's first (oldest) segment's.
    versions = [turn.policy_version for t in group.trajectories for turn in t.turns]
    group.policy_version = min(versions) if versions else 0
    return GroupResult(group, episodes, errors)

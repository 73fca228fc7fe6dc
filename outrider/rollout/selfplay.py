"""Self-play groups (rollout.self_play, docs/self-play.md): two-seat games against a pinned opponent.

A group of a two-player environment (`self_play.envs`, e.g. `nim`) is G games, each in one
env session: the seats move in turn (seat 0 first), every step is the move of the seat on
turn, and the environment addresses its observation to the seat that moves next
(outrider/envs/builtin/nim_env.py). Game i's trained seat is i mod 2, so the policy learns
both to open and to answer; it samples with the latest weights (Generate unpinned), the
other seat with the opponent's version (`league.OpponentSampler`, one per group, Generate
pinned to it with `policy_version`, so every opponent turn records the version that
really sampled it, from the policy service's stamp).

Each seat keeps its own conversation and flat token sequence, built exactly as in
episodes.py (completions as sampled, observations rendered by `ObservationTokens`), and
becomes its own Trajectory: episode 2i + s is seat s of game i. Both seats' turns are
recorded with their versions; only the trained seat's completion tokens carry loss (mask 1,
their log-probs); the opponent's have mask 0 and log-prob 0, unless
`self_play.train_both_seats` (both seats then play the latest policy and both train).

Outcome: the winner's trajectory gets reward 1, the loser's 0. A step that ends the game
with `solved` means the mover won (took the last stone); ending without it (a forfeit) means
the mover lost; ending `truncated` (the env's max_turns) or by the rollout's own limits
(max_turns per seat, max_episode_tokens) decides nothing: both get 0 and are truncated.
Since every decided game gives its two trajectories rewards 1 and 0, a group of decided games
has mean reward 1/2: the group baseline is the even game. The group's `policy_version`
(staleness) is the oldest version of a *trained* turn: an old opponent is the point, not
staleness. Infrastructure failures fail both seats of the game, as in episodes.py.

`report` (after each play): the opponent's version, games, the trained seat's wins and its
win rate against that version, forfeits, and unfinished games (the worker's group summary).
Per learner step: each game puts the component `self_play_win` (1 when the trained seat won,
else 0; weight 0, logged only) on one of its trajectories, the trained seat's (the opponent's
when the trained seat never moved), so the learner's `reward/self_play_win`, the mean over
the trajectories that carry it, is the step's win rate of the trained policy.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

import grpc

from outrider.config.rollout import RolloutConfig
from outrider.proto.v1 import common_pb2, policy_pb2
from outrider.proto.v1.common_pb2 import ChatMessage, FinishReason
from outrider.proto.v1.trajectory_pb2 import INFRA_FAILURE_ENV_ERROR, INFRA_FAILURE_ENV_UNAVAILABLE
from outrider.rollout.episodes import Episode, GroupPlayer, GroupResult, build_group, sampling_args, step_reply_problem
from outrider.rollout.league import OpponentSampler

log = logging.getLogger(__name__)

SELF_PLAY_WIN = "self_play_win"
"""The reward component (weight 0) that carries a game's result for the trained seat."""


@dataclass
class Game:
    index: int
    seats: tuple[Episode, Episode]
    trained: int
    """The seat the trained policy plays (index mod 2)."""
    session_id: str = ""
    moves: int = 0
    over: bool = False
    winner: int | None = None
    forfeit: bool = False
    ends: dict[int, int | None] = field(default_factory=dict)
    """Per seat, the end-of-sequence token its last completion stopped on (None: cut or stop string)."""

    @property
    def mover(self) -> int:
        return self.moves % 2

    def fail(self, failure: int, error: str) -> None:
        for seat in self.seats:
            seat.fail(failure, error)
        self.over = True


class SelfPlayer:
    """Plays self-play groups against a policy service and an env service."""

    def __init__(self, policy, env, cfg: RolloutConfig):
        self.policy, self.env, self.cfg = policy, env, cfg
        self.sampler = OpponentSampler.of(cfg.self_play)
        # The token bookkeeping of plain groups (appending completions, rendering observations).
        self.turns = GroupPlayer(policy, env, cfg)
        self.seconds: dict[str, float] = defaultdict(float)
        self.generations: list[tuple[float, float, int]] = []
        self.report: dict = {}
        self.trained: set[int] = set()
        """Episode indices of the last play whose turns are trained."""

    def _timed(self, service: str):
        return self.turns._timed(service)

    def play(self, task: common_pb2.Task, size: int | None = None, seed: int = 0, *, key: str = "") -> list[Episode]:
        """`size` (default G) games of `task`; `key` (the group id) draws the league opponent.
        Returns the 2·size seat episodes, rewards assigned."""
        self.turns.seconds = self.seconds = defaultdict(float)
        self.generations = []
        with self._timed("policy"):
            info = self.policy.info()
        latest = info.policy_version
        opponent = self.sampler.choose(latest, list(info.resident_versions), key)
        # "latest" is not pinned: the opponent follows the served weights like the trained seat.
        pin = None if self.sampler.mode == "latest" else opponent
        both = self.cfg.self_play.train_both_seats
        games = [Game(i, (Episode(index=2 * i), Episode(index=2 * i + 1)), trained=i % 2) for i in range(size or self.cfg.group_size)]
        self.trained = {g.seats[s].index for g in games for s in (0, 1) if both or s == g.trained}
        try:
            self._start(task, games, seed)
            while running := [g for g in games if not g.over]:
                self._move(running, pin)
        finally:
            for game in games:
                if game.session_id:
                    try:
                        with self._timed("env"):
                            self.env.close_session(game.session_id)
                    except grpc.RpcError as exc:
                        log.warning("CloseSession %s: %s", game.session_id, exc.code().name)
        self._outcomes(games)
        decided = [g for g in games if g.winner is not None]
        wins = sum(g.winner == g.trained for g in decided)
        self.report = {
            "opponent_version": opponent,
            "latest_version": latest,
            "games": len(games),
            "wins": wins,
            "win_rate": wins / len(games),
            "forfeits": sum(g.forfeit for g in games),
            "unfinished": sum(g.winner is None for g in games),
        }
        return [seat for g in games for seat in g.seats]

    def build(self, task: common_pb2.Task, group_id: str, episodes: list[Episode]) -> GroupResult:
        """The group of `episodes` (from the last play), its policy_version the oldest trained turn's."""
        result = build_group(task, group_id, episodes)
        indices = {t.trajectory_id: int(t.trajectory_id.rsplit("/", 1)[1]) for t in result.group.trajectories}
        versions = [
            turn.policy_version for t in result.group.trajectories if indices[t.trajectory_id] in self.trained for turn in t.turns
        ]
        result.group.policy_version = min(versions) if versions else 0
        return result

    def _start(self, task: common_pb2.Task, games: list[Game], seed: int) -> None:
        for game in games:
            try:
                with self._timed("env"):
                    reply = self.env.create_session(task.env, task.id, seed=seed + game.index)
            except grpc.RpcError as exc:
                game.fail(INFRA_FAILURE_ENV_UNAVAILABLE, f"CreateSession: {exc.code().name}: {exc.details()}")
                continue
            game.session_id = reply.session_id
            game.seats[0].messages = list(reply.observation.messages)
        self._prompts([g.seats[0] for g in games if not g.over])

    def _prompts(self, seats: list[Episode]) -> None:
        """A seat's first prompt: its conversation so far, chat-templated (one call for all)."""
        if not seats:
            return
        with self._timed("policy"):
            rendered = self.policy.apply_chat_template(
                [common_pb2.Conversation(messages=s.messages, add_generation_prompt=True) for s in seats]
            )
        for seat, ids in zip(seats, rendered.tokens, strict=True):
            seat.token_ids = list(ids.ids)
            seat.logprobs = [0.0] * len(seat.token_ids)
            seat.loss_mask = [False] * len(seat.token_ids)
            seat.prompt_length = len(seat.token_ids)

    def _move(self, running: list[Game], pin: int | None) -> None:
        """One move in every running game: a Generate per version (trained seats, opponents), a Step per game."""
        for game in running:
            mover = game.seats[game.mover]
            over_turns = self.cfg.max_turns is not None and len(mover.turns) >= self.cfg.max_turns
            if over_turns or len(mover.token_ids) >= self.cfg.max_episode_tokens:
                game.over = True  # undecided: _outcomes marks both seats truncated
        running = [g for g in running if not g.over]
        both = self.cfg.self_play.train_both_seats
        by_version: dict[int | None, list[Game]] = defaultdict(list)
        for game in running:
            by_version[None if both or game.mover == game.trained else pin].append(game)
        stepped = []
        for version, games in by_version.items():
            stepped += self._generate(games, version)
        first_prompts, observations = [], []
        for game, text, ids in stepped:
            seat = game.mover
            mover = game.seats[seat]
            mover.messages.append(ChatMessage(role="assistant", content=text))
            try:
                with self._timed("env"):
                    reply = self.env.step(game.session_id, text, ids)
            except grpc.RpcError as exc:
                game.fail(INFRA_FAILURE_ENV_UNAVAILABLE, f"Step: {exc.code().name}: {exc.details()}")
                continue
            if problem := step_reply_problem(reply):
                game.fail(INFRA_FAILURE_ENV_ERROR, problem)
                continue
            mover.turns[-1].env_reward = reply.reward
            game.moves += 1
            if reply.done:
                game.over = True
                if not reply.truncated:
                    game.winner = seat if reply.info.solved else 1 - seat
                    game.forfeit = not reply.info.solved
                continue
            other = game.seats[1 - seat]
            other.messages += list(reply.observation.messages)
            if not other.token_ids:
                first_prompts.append(other)
            else:
                observations.append((other, game.ends.get(1 - seat), list(reply.observation.messages)))
        self._prompts(first_prompts)
        if observations:
            with self._timed("policy"):
                rendered = self.turns.observations.after_completions([(end, messages) for _, end, messages in observations])
            for (seat, _, _), ids in zip(observations, rendered, strict=True):
                seat.turns[-1].observation_length = len(ids)
                seat.token_ids += ids
                seat.logprobs += [0.0] * len(ids)
                seat.loss_mask += [False] * len(ids)

    def _generate(self, games: list[Game], version: int | None) -> list[tuple[Game, str, list[int]]]:
        """The movers' completions, sampled by `version` (None: the latest), appended to their seats."""
        movers = [g.seats[g.mover] for g in games]
        max_tokens = min(min(self.cfg.sampling.max_tokens, self.cfg.max_episode_tokens - len(m.token_ids)) for m in movers)
        prompts = [policy_pb2.Prompt(token_ids=common_pb2.TokenIds(ids=m.token_ids)) for m in movers]
        started = time.time()
        with self._timed("policy"):
            reply = self.policy.generate(prompts, policy_version=version, **sampling_args(self.cfg, max_tokens))
        self.generations.append((started, time.time(), len(movers)))
        both = self.cfg.self_play.train_both_seats
        out = []
        for game, mover, result in zip(games, movers, reply.results, strict=True):
            completion = result.completions[0]
            start = len(mover.token_ids)
            self.turns._append(mover, completion, reply.policy_version)
            if not (both or game.mover == game.trained):
                # Recorded, not trained: the opponent's tokens carry no loss.
                count = len(mover.token_ids) - start
                mover.loss_mask[start:] = [False] * count
                mover.logprobs[start:] = [0.0] * count
            ids = list(completion.token_ids)
            ended_on_eos = completion.finish_reason == FinishReason.FINISH_REASON_STOP and ids and ids[-1] in self.turns.eos_ids
            game.ends[game.mover] = ids[-1] if ended_on_eos else None
            out.append((game, completion.text, ids))
        return out

    def _outcomes(self, games: list[Game]) -> None:
        for game in games:
            for seat, episode in enumerate(game.seats):
                episode.done = True
                if game.winner is None:
                    episode.truncated = not episode.error
                    episode.outcome_reward = 0.0
                else:
                    episode.solved = game.winner == seat
                    episode.outcome_reward = 1.0 if game.winner == seat else 0.0
            trained, opponent = game.seats[game.trained], game.seats[1 - game.trained]
            carrier = trained if trained.turns else opponent
            if carrier.turns and not carrier.error:
                won = float(game.winner == game.trained)
                carrier.reward_components.append(common_pb2.RewardComponent(name=SELF_PLAY_WIN, value=won, weight=0.0))


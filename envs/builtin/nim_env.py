"""`nim`: a two-player game for self-play (docs/self-play.md): one pile, take 1-3, who takes the last stone wins.

Two seats share one session and move in turn, seat 0 first: each `step` is the move of
the seat on turn, and its observation is addressed to the seat that moves next (its
first one states the rules, since that seat has seen nothing yet). The self-play rollout
(outrider/rollout/selfplay.py) keeps one conversation per seat and routes them.

A move is the last integer in the reply; it must be between 1 and min(3, stones left).
A reply without one, or with one outside that range, is a malformed move, with a fixed
outcome set by the param `invalid_move`:

    forfeit   (default) the mover loses at once: done, solved false, reward 0, metric forfeit = 1
    take-one  one stone is taken for the mover, metric invalid = 1 (counted, never silent);
              for smoke tests of untrained models, whose replies are rarely numbers

Outcome of a step: taking the last stone wins (done, solved true, reward 1); any other
legal move rewards 0 and the game goes on. There are no draws. The metric `optimal` is 1
when a legal move leaves a multiple of 4 stones (the winning strategy; from a multiple of 4
no move is optimal), so play quality is checkable against the known solution.

Params: `difficulty` (level 0: 5-10 stones, 1: 11-20, 2: 21-40; "all" by default),
`invalid_move` (forfeit), `num_train` (1000), `num_test` (200).
"""

from __future__ import annotations

import functools
import re

from outrider.envs.builtin.common import check_split, difficulty_levels, parse_task_id, split_sizes, task_id, task_rng
from outrider.envs.interface import Environment, Message, ParamError, StepResult, Task
from outrider.proto.v1 import env_pb2

NAME = "nim"
MAX_TAKE = 3
PILES = ((5, 10), (11, 20), (21, 40))
INVALID_MOVES = ("forfeit", "take-one")
_WORDS = {"one": 1, "two": 2, "three": 3}
"""A move spelled out, as small models often reply ("Three.")."""
_MOVE = re.compile(r"-?\d+|\b(?:" + "|".join(_WORDS) + r")\b", re.IGNORECASE)

RULES = (
    "We play Nim. There is one pile of stones; the players take turns, and each turn a player "
    f"takes 1 to {MAX_TAKE} stones. Whoever takes the last stone wins."
)


@functools.lru_cache(maxsize=16)
def build_tasks(levels: tuple[int, ...], sizes: tuple[tuple[str, int], ...]) -> dict[str, tuple[Task, ...]]:
    tasks = {}
    for split, size in sizes:
        made = []
        for index in range(size):
            level = levels[index % len(levels)]
            stones = task_rng(NAME, split, index).randint(*PILES[level])
            made.append(Task(task_id(split, index), split, float(level), f"{stones} stones", str(stones)))
        tasks[split] = tuple(made)
    return tasks


def legal_moves(stones: int) -> range:
    return range(1, min(MAX_TAKE, stones) + 1)


def parse_move(reply: str, stones: int) -> int | None:
    """The move a reply makes (its last integer or number word from one to three), or None
    when it is malformed."""
    numbers = _MOVE.findall(reply)
    if not numbers:
        return None
    last = numbers[-1].lower()
    move = _WORDS[last] if last in _WORDS else int(last)
    return move if move in legal_moves(stones) else None


def ask(stones: int) -> str:
    return f"How many stones do you take (1-{min(MAX_TAKE, stones)})? Reply with just the number."


class NimEnv(Environment):
    def __init__(self, params=None, context=None):
        super().__init__(params, context)
        self.sizes = split_sizes(self.params, 1000, 200)
        self.levels = tuple(difficulty_levels(self.params, len(PILES) - 1))
        self.invalid_move = self.params.get("invalid_move", "forfeit")
        if self.invalid_move not in INVALID_MOVES:
            raise ParamError(f"params.invalid_move: {self.invalid_move!r} is not one of {', '.join(INVALID_MOVES)}")
        self.start = self.stones = 0
        self.moves = 0

    @classmethod
    def default_spec(cls) -> env_pb2.EnvSpec:
        return env_pb2.EnvSpec(
            name=NAME,
            version="1.0.0",
            description="Two-player Nim (take 1-3, the last stone wins) for self-play: each step is the move of the seat on turn.",
            python=env_pb2.PythonEntryPoint(entry_point="outrider.envs.builtin.nim_env:NimEnv"),
            max_turns=2 * PILES[-1][1],
            reward=env_pb2.RewardSpec(max_reward=1.0),
        )

    def _all(self):
        return build_tasks(self.levels, tuple(self.sizes.items()))

    def tasks(self, split: str) -> list[Task]:
        return list(self._all()[check_split(split)])

    async def reset(self, task_id_: str, seed: int) -> list[Message]:
        split, index = parse_task_id(task_id_, self.sizes)
        self.start = self.stones = int(self._all()[split][index].reference)
        self.moves = 0
        return [Message("user", f"{RULES} You move first. There are {self.stones} stones. {ask(self.stones)}")]

    @property
    def seat(self) -> int:
        """The seat on turn (0 moves first)."""
        return self.moves % 2

    async def step(self, action: str) -> StepResult:
        seat, before = self.seat, self.stones
        move = parse_move(action, before)
        metrics = {"seat": float(seat), "stones": float(before)}
        if move is None:
            if self.invalid_move == "forfeit":
                return StepResult([], reward=0.0, done=True, solved=False, metrics=metrics | {"forfeit": 1.0})
            move, metrics["invalid"] = 1, 1.0
        else:
            metrics["optimal"] = float((before - move) % (MAX_TAKE + 1) == 0)
        self.stones -= move
        self.moves += 1
        if self.stones == 0:
            return StepResult([], reward=1.0, done=True, solved=True, metrics=metrics)
        took = f"Your opponent took {move} {'stone' if move == 1 else 'stones'}; {self.stones} remain."
        if self.moves == 1:  # the second seat's first message: it has not seen the rules
            text = f"{RULES} There were {self.start} stones and your opponent moved first. {took} {ask(self.stones)}"
        else:
            text = f"{took} {ask(self.stones)}"
        return StepResult([Message("user", text)], reward=0.0, done=False, metrics=metrics)

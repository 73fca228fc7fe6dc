"""The example OpenEnv server (`python -m outrider.envs.examples.openenv_guess`) as its own
process on port 0, played over its WebSocket the way OpenEnv's clients do. The expected
replies follow from the game's rule by hand: seed 13 hides 1 + 13 % 8 = 6."""

from __future__ import annotations

import json

import pytest
from websockets.sync.client import connect

from testkit.example_servers import example_server


@pytest.fixture
def guess_server():
    with example_server("outrider.envs.examples.openenv_guess") as process:
        yield process


def _send(ws, kind: str, data: dict) -> dict:
    ws.send(json.dumps({"type": kind, "data": data}))
    return json.loads(ws.recv())


def test_an_episode_narrows_the_candidates_and_ends_on_the_right_guess(guess_server):
    with connect(f"ws://127.0.0.1:{guess_server.port}/ws") as ws:
        reset = _send(ws, "reset", {"seed": 13, "episode_id": "e1"})
        assert reset["data"]["observation"]["text"] == "Guess my number. It is one of: 1, 2, 3, 4, 5, 6, 7, 8. Reply with one number."
        assert reset["data"]["done"] is False and reset["data"]["reward"] is None

        # The first integer is the guess: 3, not 9.
        higher = _send(ws, "step", {"guess": "3, or maybe 9"})["data"]
        assert higher["observation"]["text"] == "No, my number is higher than 3. It is one of: 4, 5, 6, 7, 8. Reply with one number."
        assert (higher["reward"], higher["done"], higher["metadata"]) == (0.0, False, {"attempts": 1, "distance": 3})

        lower = _send(ws, "step", {"guess": "7"})["data"]
        assert lower["observation"]["text"] == "No, my number is lower than 7. It is one of: 4, 5, 6. Reply with one number."

        none = _send(ws, "step", {"guess": "six"})["data"]
        assert none["observation"]["text"] == "No number in your reply. It is one of: 4, 5, 6. Reply with one number."
        assert (none["reward"], none["done"], none["metadata"]) == (0.0, False, {"attempts": 3})

        right = _send(ws, "step", {"guess": "It is 6."})["data"]
        assert (right["reward"], right["done"], right["metadata"]) == (1.0, True, {"attempts": 4, "distance": 0})


def test_the_fourth_wrong_guess_ends_the_episode_and_a_bad_action_is_refused(guess_server):
    with connect(f"ws://127.0.0.1:{guess_server.port}/ws") as ws:
        _send(ws, "reset", {"seed": 0})  # hides 1
        refused = _send(ws, "step", {"text": "1"})
        assert (refused["type"], refused["data"]["code"]) == ("error", "VALIDATION_ERROR")
        replies = [_send(ws, "step", {"guess": "8"})["data"] for _ in range(4)]
        assert [r["done"] for r in replies] == [False, False, False, True]
        assert [r["reward"] for r in replies] == [0.0, 0.0, 0.0, 0.0]

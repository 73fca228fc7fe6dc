"""A small server of the OpenEnv ecosystem for tests, following its wire format (FastAPI +
uvicorn on 127.0.0.1, port 0): GET /health, /schema, /state; POST /reset, /step; WebSocket
/ws with `reset`/`step`/`close` messages answered `observation` or `error`. Like OpenEnv's
HTTPEnvServer it makes one environment per WebSocket connection; its HTTP routes share one
environment (the kind of server the adapter's `http` transport is for).

The game, whose numbers tests derive by hand: reset(seed, low=0, high=9) hides
`low + seed % (high - low + 1)`; the action is {"guess": str, "style": "plain"} (both
required, nothing else); a guess gets reward 1 and done when right, else reward 0 and text
"higher"/"lower" ("not a number" for text that is no integer), and the third wrong guess
ends the episode (reward 0). Observation {"text", "attempt"}; metadata {"attempts",
"distance"} (distance only for numbers). Special guesses make the server misbehave:
"crash" (the environment raises: HTTP 500 / EXECUTION_ERROR), "garbage" (a reply that is
not JSON), "null" (reward null), "slow" (answers after 3 s).

The server keeps its own account of what it served, `app.state.served`: one record per
reset (`seed`, `target`, `episode_id`) with the guesses its steps received, so that a test
can count and score the episodes independently of the client that played them.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Literal

import uvicorn
from fastapi import Body, FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from outrider.envs.examples.openenv_guess import add_metadata_routes, http_action

ATTEMPTS = 3


def expected_reward(guess: str, target: int) -> float:
    """The game's reward of one guess (what a test expects of a reply it did not script)."""
    return 1.0 if guess.strip() == str(target) else 0.0


class GuessAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    guess: str
    style: Literal["plain"]


class Misbehave(Exception):
    """The guess asks the server to answer with something that is not a reply."""


class Guess:
    """One episode of the game (an OpenEnv environment: reset, step, state)."""

    def __init__(self, served: list[dict] | None = None):
        self.target, self.attempts, self.episode_id = None, 0, None
        self.served, self.record = served, None

    def reset(self, seed: int | None = None, episode_id: str | None = None, low: int = 0, high: int = 9) -> dict:
        if low > high:
            raise ValueError(f"low {low} is above high {high}")
        self.target, self.attempts, self.episode_id = low + (seed or 0) % (high - low + 1), 0, episode_id
        self.low, self.high = low, high
        if self.served is not None:
            self.record = {"episode_id": episode_id, "seed": seed, "target": self.target, "guesses": []}
            self.served.append(self.record)
        return {"observation": {"text": f"Guess an integer from {low} to {high}.", "attempt": 0}, "reward": None, "done": False}

    async def step(self, action: GuessAction) -> dict:
        if action.guess == "crash":
            raise RuntimeError("the environment crashed on purpose")
        if action.guess in ("garbage", "null"):
            raise Misbehave(action.guess)
        if action.guess == "slow":
            await asyncio.sleep(3)
        if self.target is None:
            raise RuntimeError("step before reset")
        self.attempts += 1
        if self.record is not None:
            self.record["guesses"].append(action.guess)
        try:
            number = int(action.guess.strip())
        except ValueError:
            number = None
        if number is None or action.guess.strip() != str(number):
            metadata, text = {"attempts": self.attempts}, "not a number"
        else:
            metadata = {"attempts": self.attempts, "distance": abs(number - self.target)}
            if number == self.target:
                return {"observation": {"text": "correct", "attempt": self.attempts}, "reward": 1.0, "done": True, "metadata": metadata}
            text = "higher" if number < self.target else "lower"
        return {"observation": {"text": text, "attempt": self.attempts}, "reward": 0.0, "done": self.attempts >= ATTEMPTS, "metadata": metadata}

    def state(self) -> dict:
        return {"episode_id": self.episode_id, "step_count": self.attempts}


def null_reply(game: Guess) -> dict:
    return {"observation": {"text": "no reward today", "attempt": game.attempts}, "reward": None, "done": False}


def make_app(max_connections: int = 8) -> FastAPI:
    app = FastAPI()
    served: list[dict] = []  # every episode played, over either transport (see the module's docstring)
    shared = Guess(served)  # the HTTP routes' one environment
    open_connections = []

    add_metadata_routes(app, GuessAction, shared.state)

    @app.post("/reset")
    async def reset(request: dict = Body(default_factory=dict)):
        try:
            return shared.reset(**request)
        except ValueError as exc:
            return JSONResponse({"detail": f"ValueError: {exc}"}, status_code=500)

    @app.post("/step")
    async def step(request: dict = Body(...)):
        action = http_action(GuessAction, request)
        try:
            return await shared.step(action)
        except Misbehave as exc:
            if str(exc) == "garbage":
                return PlainTextResponse("<html>proxy error</html>")
            return null_reply(shared)
        except Exception as exc:  # noqa: BLE001 - what OpenEnv's server does: the failure is a 500
            return JSONResponse({"detail": f"{type(exc).__name__}: {exc}"}, status_code=500)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket):
        await websocket.accept()
        if len(open_connections) >= max_connections:
            data = {"message": "server at capacity", "code": "CAPACITY_REACHED", "active_sessions": len(open_connections), "max_sessions": max_connections}
            await websocket.send_text(json.dumps({"type": "error", "data": data}))
            await websocket.close()
            return
        game = Guess(served)
        open_connections.append(game)
        try:
            while True:
                message = json.loads(await websocket.receive_text())
                try:
                    if message["type"] == "reset":
                        reply = {"type": "observation", "data": game.reset(**message.get("data", {}))}
                    elif message["type"] == "step":
                        reply = {"type": "observation", "data": await game.step(GuessAction.model_validate(message["data"]))}
                    elif message["type"] == "close":
                        break
                    else:
                        reply = {"type": "error", "data": {"message": f"Unknown message type: {message['type']}", "code": "UNKNOWN_TYPE"}}
                except ValidationError as exc:
                    errors = exc.errors(include_url=False, include_context=False)
                    reply = {"type": "error", "data": {"message": "Invalid message", "code": "VALIDATION_ERROR", "errors": errors}}
                except Misbehave as exc:
                    if str(exc) == "garbage":
                        await websocket.send_text("<html>proxy error</html>")
                        continue
                    reply = {"type": "observation", "data": null_reply(game)}
                except Exception as exc:  # noqa: BLE001 - OpenEnv's server answers EXECUTION_ERROR
                    reply = {"type": "error", "data": {"message": str(exc), "code": "EXECUTION_ERROR"}}
                await websocket.send_text(json.dumps(reply))
        except WebSocketDisconnect:
            pass
        finally:
            open_connections.remove(game)

    app.state.open_connections = open_connections
    app.state.served = served
    return app


class ToyServer:
    """uvicorn serving `make_app()` on 127.0.0.1 in a thread of its own."""

    def __init__(self, **app_options):
        self.app = make_app(**app_options)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="websockets-sansio")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ToyServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the toy OpenEnv server did not start"
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

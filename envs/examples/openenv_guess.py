"""A number-guessing game served in OpenEnv's wire format: an OpenEnv server to train on.

    python -m outrider.envs.examples.openenv_guess --port 50072

Any server of the OpenEnv ecosystem is adapted by the env service from one spec
(kind `openenv`, docs/environments.md); this one stands in for such a server so that
examples/grpo-openenv-guess.yaml runs on a laptop. It speaks the routes of OpenEnv's
`HTTPEnvServer`: GET /health and /schema, WebSocket /ws (one environment per
connection; messages `reset`/`step`/`close` answered `observation` or `error`), and
POST /reset and /step on one environment that all HTTP clients share.

The game: reset(seed) hides the number `1 + seed % 8`; the action is {"guess": text},
and the first integer in the text is the guess (a small chat model's reply runs on
after its answer, often with other numbers). A right guess earns reward 1 and ends the
episode; a wrong one gets reward 0, "higher" or "lower" and the numbers still possible
("It is one of: 5, 6, 7, 8."), a reply with no integer "No number in your reply."; the
fourth wrong guess ends the episode. Bisecting always wins within three guesses. The
list of candidates is what makes the game learnable from a 135M model's start: it
tends to repeat a number it was shown, so it guesses a candidate in some episodes of a
group and wanders off in others (docs/training.md, "Examples", has the measured rate).

On start the process prints `REMOTE_ENV_READY port=<port>` (port 0 picks one).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import threading
import time
from collections.abc import Callable

import uvicorn
from fastapi import Body, FastAPI, HTTPException, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, ValidationError

ATTEMPTS = 4
LOW, HIGH = 1, 8
MAX_CONNECTIONS = 64
_INTEGER = re.compile(r"-?\d+")


class GuessAction(BaseModel):
    """The action: the policy's reply."""

    model_config = ConfigDict(extra="forbid")
    guess: str


class GuessGame:
    """One episode (an OpenEnv environment: reset, step, state)."""

    def __init__(self):
        self.target: int | None = None
        self.attempts = 0
        self.episode_id: str | None = None
        self.candidates: list[int] = []

    def reset(self, seed: int | None = None, episode_id: str | None = None) -> dict:
        self.target, self.attempts, self.episode_id = LOW + (seed or 0) % (HIGH - LOW + 1), 0, episode_id
        self.candidates = list(range(LOW, HIGH + 1))
        text = f"Guess my number. It is one of: {_listing(self.candidates)}. Reply with one number."
        return {"observation": {"text": text, "attempt": 0}, "reward": None, "done": False}

    def step(self, action: GuessAction) -> dict:
        if self.target is None:
            raise RuntimeError("step before reset")
        self.attempts += 1
        numbers = _INTEGER.findall(action.guess)
        if not numbers:
            metadata, said = {"attempts": self.attempts}, "No number in your reply."
        else:
            guess = int(numbers[0])
            metadata = {"attempts": self.attempts, "distance": abs(guess - self.target)}
            if guess == self.target:
                return {"observation": {"text": "Correct!", "attempt": self.attempts}, "reward": 1.0, "done": True, "metadata": metadata}
            if guess < self.target:
                self.candidates = [n for n in self.candidates if n > guess]
                said = f"No, my number is higher than {guess}."
            else:
                self.candidates = [n for n in self.candidates if n < guess]
                said = f"No, my number is lower than {guess}."
        text = f"{said} It is one of: {_listing(self.candidates)}. Reply with one number."
        return {"observation": {"text": text, "attempt": self.attempts}, "reward": 0.0, "done": self.attempts >= ATTEMPTS, "metadata": metadata}

    def state(self) -> dict:
        return {"episode_id": self.episode_id, "step_count": self.attempts}


def _listing(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers))


def _error(message: str, code: str, **extra) -> str:
    return json.dumps({"type": "error", "data": {"message": message, "code": code, **extra}})


def add_metadata_routes(app: FastAPI, action: type[BaseModel], state: Callable[[], dict]) -> None:
    """OpenEnv's read-only routes: `/health`, `/schema` (the action's JSON schema) and
    `/state` (of the HTTP routes' one environment)."""

    @app.get("/health")
    async def health():
        return {"status": "healthy"}

    @app.get("/schema")
    async def schema():
        return {"action": action.model_json_schema(), "observation": {"type": "object"}, "state": {"type": "object"}}

    @app.get("/state")
    async def current_state():
        return state()


def http_action(action: type[BaseModel], request: dict) -> BaseModel:
    """The action of an HTTP `/step` request, or the 422 with pydantic's errors that
    OpenEnv's server answers for one that does not validate."""
    try:
        return action.model_validate(request.get("action"))
    except ValidationError as exc:
        raise HTTPException(status_code=422, detail=exc.errors(include_url=False, include_context=False)) from None


def make_app(max_connections: int = MAX_CONNECTIONS) -> FastAPI:
    app = FastAPI(title="openenv-guess")
    shared = GuessGame()  # the HTTP routes' one environment
    connections: list[GuessGame] = []

    add_metadata_routes(app, GuessAction, shared.state)

    @app.post("/reset")
    async def reset(request: dict = Body(default_factory=dict)):
        return shared.reset(seed=request.get("seed"), episode_id=request.get("episode_id"))

    @app.post("/step")
    async def step(request: dict = Body(...)):
        action = http_action(GuessAction, request)
        try:
            return shared.step(action)
        except RuntimeError as exc:
            raise HTTPException(status_code=500, detail=str(exc)) from None

    @app.websocket("/ws")
    async def ws(websocket: WebSocket):
        await websocket.accept()
        if len(connections) >= max_connections:
            await websocket.send_text(_error("server at capacity", "CAPACITY_REACHED", max_sessions=max_connections))
            await websocket.close()
            return
        game = GuessGame()
        connections.append(game)
        try:
            while True:
                message = json.loads(await websocket.receive_text())
                kind, data = message.get("type"), message.get("data") or {}
                try:
                    if kind == "reset":
                        reply = game.reset(seed=data.get("seed"), episode_id=data.get("episode_id"))
                    elif kind == "step":
                        reply = game.step(GuessAction.model_validate(data))
                    elif kind == "close":
                        break
                    else:
                        await websocket.send_text(_error(f"Unknown message type: {kind}", "UNKNOWN_TYPE"))
                        continue
                except ValidationError as exc:
                    errors = exc.errors(include_url=False, include_context=False)
                    await websocket.send_text(_error("Invalid message", "VALIDATION_ERROR", errors=errors))
                    continue
                except RuntimeError as exc:
                    await websocket.send_text(_error(str(exc), "EXECUTION_ERROR"))
                    continue
                await websocket.send_text(json.dumps({"type": "observation", "data": reply}))
        except WebSocketDisconnect:
            pass
        finally:
            connections.remove(game)

    return app


def create_server(host: str, port: int) -> tuple[uvicorn.Server, threading.Thread, int]:
    """uvicorn serving the game in a thread of its own, started; its bound port."""
    config = uvicorn.Config(make_app(), host=host, port=port, log_level="warning", lifespan="off", ws="websockets-sansio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the server did not start on {host}:{port}")
        time.sleep(0.02)
    return server, thread, server.servers[0].sockets[0].getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the number-guessing game in OpenEnv's wire format.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server, thread, port = create_server(args.host, args.port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"REMOTE_ENV_READY port={port}", flush=True)
    stop.wait()
    server.should_exit = True
    thread.join(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

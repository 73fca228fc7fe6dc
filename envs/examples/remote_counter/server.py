"""The `counter` game, served over gRPC as a standalone environment server.

Task `train-K` / `test-K`: count from 1 to N (N = 3 + K % 5), one number per
turn. A reply whose last integer is the next number earns 1/N; any other reply
gets feedback with the expected number and no reward. Saying N ends the
episode, solved, with a total reward of 1.

On start the process prints `REMOTE_ENV_READY port=<port>` (port 0 picks one).
"""

from __future__ import annotations

import argparse
import re
import signal
import threading
import uuid
from concurrent import futures

import grpc

from outrider.proto.v1 import common_pb2, env_pb2, env_pb2_grpc

ENV_NAME = "counter"
TASKS_PER_SPLIT = 10
_INTEGER = re.compile(r"-?\d+")


def target_of(task_id: str) -> int | None:
    split, _, index = task_id.partition("-")
    if split not in ("train", "test") or not index.isdigit() or int(index) >= TASKS_PER_SPLIT:
        return None
    return 3 + int(index) % 5


def spec() -> env_pb2.EnvSpec:
    return env_pb2.EnvSpec(
        name=ENV_NAME,
        version="1.0.0",
        description="Count from 1 to N, one number per turn (a remote example environment).",
        max_turns=12,
        reward=env_pb2.RewardSpec(max_reward=1.0),
    )


class CounterServicer(env_pb2_grpc.EnvServiceServicer):
    def __init__(self):
        self.sessions: dict[str, dict] = {}
        self.lock = threading.Lock()

    def ListEnvs(self, request, context):
        return env_pb2.ListEnvsResponse(envs=[spec()])

    def RegisterEnv(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "this server serves one fixed environment")

    def UnregisterEnv(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "this server serves one fixed environment")

    def ListTasks(self, request, context):
        self._check_env(request.env, context)
        split = request.split or "train"
        if split not in ("train", "test"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"split: unknown split {split!r}")
        ids = [f"{split}-{k}" for k in range(TASKS_PER_SPLIT)]
        page = ids[request.offset : request.offset + (request.limit or TASKS_PER_SPLIT)]
        tasks = [
            common_pb2.Task(
                id=task_id, env=ENV_NAME, split=split, difficulty=float(target_of(task_id) - 3),
                preview=f"Count from 1 to {target_of(task_id)}.",
                reference=str(target_of(task_id)) if request.include_reference else "",
            )
            for task_id in page
        ]
        return env_pb2.ListTasksResponse(tasks=tasks, total=len(ids))

    def CreateSession(self, request, context):
        self._check_env(request.env, context)
        target = target_of(request.task_id)
        if target is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown task {request.task_id!r}")
        session_id = uuid.uuid4().hex
        with self.lock:
            self.sessions[session_id] = {"target": target, "next": 1, "turns": 0, "reward": 0.0, "done": False}
        text = f"Count from 1 to {target}, one number per reply. Start with 1."
        observation = env_pb2.Observation(messages=[common_pb2.ChatMessage(role="user", content=text)])
        return env_pb2.CreateSessionResponse(session_id=session_id, observation=observation, spec=spec(), ttl_s=0)

    def Step(self, request, context):
        with self.lock:
            state = self.sessions.get(request.session_id)
        if state is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown session {request.session_id!r}")
        if state["done"]:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "the episode is over")
        state["turns"] += 1
        numbers = _INTEGER.findall(request.action.text)
        status = common_pb2.ItemStatus(code=common_pb2.ItemStatus.OK, source=f"env:{ENV_NAME}")
        response = env_pb2.StepResponse(turn=state["turns"], status=status)
        if numbers and int(numbers[-1]) == state["next"]:
            response.reward = 1.0 / state["target"]
            state["reward"] += response.reward
            if state["next"] == state["target"]:
                state["done"] = response.done = response.info.solved = True
                return response
            state["next"] += 1
            feedback = "Good. Next?"
        else:
            response.reward = 0.0
            feedback = f"Expected {state['next']}."
        response.observation.messages.append(common_pb2.ChatMessage(role="user", content=feedback))
        return response

    def CloseSession(self, request, context):
        with self.lock:
            state = self.sessions.pop(request.session_id, None)
        if state is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown session {request.session_id!r}")
        return env_pb2.CloseSessionResponse(turns=state["turns"], total_reward=state["reward"], solved=state["done"])

    @staticmethod
    def _check_env(name: str, context) -> None:
        if name != ENV_NAME:
            context.abort(grpc.StatusCode.NOT_FOUND, f"this server serves {ENV_NAME!r}, not {name!r}")


def serve(host: str, port: int) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    env_pb2_grpc.add_EnvServiceServicer_to_server(CounterServicer(), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    return server, bound


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the `counter` example environment over gRPC.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server, port = serve(args.host, args.port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"REMOTE_ENV_READY port={port}", flush=True)
    stop.wait()
    server.stop(2).wait()
    return 0

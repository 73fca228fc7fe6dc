"""The local stack: Outrider's services as supervised subprocesses.

`outrider up` (and, later, `outrider train` in local mode) starts Redis (embedded
when no URL is configured) and each service as `python -m <service main>`,
waits until each reports SERVING on its gRPC health service, and tears
everything down on exit. A service that dies is reported with its name and
exit status. Children get PR_SET_PDEATHSIG so that even a SIGKILLed
supervisor leaves no orphans.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from outrider.config import RunConfig, dump_yaml
from outrider.process import dying_with_this_process
from outrider.services import SERVICE_MAIN_MODULES, available_services
from outrider.transport import RedisHandle, open_redis

log = logging.getLogger(__name__)

class StackError(RuntimeError):
    """A service could not start or died."""


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen
    log_path: Path
    port: int | None = None
    metrics_port: int | None = None
    http_port: int | None = None
    _ready: threading.Event = field(default_factory=threading.Event)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def describe_exit(self) -> str:
        code = self.process.returncode
        status = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        return f"service '{self.name}' (pid {self.process.pid}) stopped: {status}; log: {self.log_path}"


def _read_stdout(service: ServiceProcess) -> None:
    """Copy the child's stdout to its log; note the READY line with its ports."""
    with open(service.log_path, "a") as out:
        for line in service.process.stdout:
            if line.startswith("OUTRIDER_HTTP"):
                fields = dict(part.split("=", 1) for part in line.split()[1:])
                service.http_port = int(fields["http_port"])
            if line.startswith("OUTRIDER_READY"):
                fields = dict(part.split("=", 1) for part in line.split()[1:])
                service.port = int(fields["port"])
                service.metrics_port = int(fields.get("metrics_port", 0)) or None
                service._ready.set()
            out.write(line)
            out.flush()


def wait_serving(address: str, service_name: str = "", timeout_s: float = 30.0) -> None:
    """Block until the health service at `address` reports SERVING."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service_name), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise StackError(f"{address} did not report SERVING within {timeout_s:.0f} s")
            time.sleep(0.2)


STATE_FILE = "addresses.json"
"""Written into `<run_dir>/stack/` while a stack serves: its pid, Redis URL and addresses."""


class LocalStack:
    """Start, watch and stop the services of a run on this machine."""

    def __init__(self, cfg: RunConfig, run_dir: Path):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.redis: RedisHandle | None = None
        self.services: dict[str, ServiceProcess] = {}
        self.ports: dict[str, int] = {}
        self.policy_http_port: int | None = None

    def start(self) -> None:
        (self.run_dir / "stack").mkdir(parents=True, exist_ok=True)
        wanted = [name for name in self.cfg.stack.services if name in available_services()]
        missing = [name for name in self.cfg.stack.services if name not in wanted]
        if missing:
            log.warning("not installed, not started: %s", ", ".join(missing))
        # Ports are chosen before anything starts so each service can be told
        # where the others are (the curriculum reads tasks from the env service).
        self.ports = {name: getattr(self.cfg, name).server.port or free_port() for name in wanted}
        # The policy's HTTP port too: the env service hands it to agent programs (agent_gateway).
        if "policy" in wanted and self.cfg.policy.http_port is not None:
            self.policy_http_port = self.cfg.policy.http_port or free_port()
        try:
            self.redis = open_redis(self.cfg.redis)
            for name in wanted:
                self.services[name] = self._spawn(name)
            for name in wanted:
                self._await_ready(self.services[name])
        except BaseException:
            self.stop()
            raise
        self._write_state()

    def _write_state(self) -> None:
        """`<run_dir>/stack/addresses.json`: where commands find this stack's services
        (`outrider.cli.addresses`); removed by `stop`."""
        state = {
            "pid": os.getpid(),
            "redis": self.redis.url if self.redis else None,
            "addresses": self.addresses(),
            "http": {name: f"http://127.0.0.1:{s.http_port}/v1" for name, s in self.services.items() if s.http_port},
        }
        path = self.run_dir / "stack" / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(path)

    def _service_config(self, name: str):
        section = getattr(self.cfg, name)
        updates: dict = {"server": section.server.model_copy(update={"port": self.ports[name]})}
        if "redis" in type(section).model_fields:
            # Every service shares the run's Redis (embedded or not).
            updates["redis"] = section.redis.model_copy(update={"url": self.redis.url})
        if name == "policy" and self.policy_http_port is not None:
            updates["http_port"] = self.policy_http_port
        if name == "policy" and section.capture.redis_url is None:
            # Captured agent sessions (docs/agents.md) live in the run's Redis too.
            updates["capture"] = section.capture.model_copy(update={"redis_url": self.redis.url})
        if name == "env" and section.agent_gateway is None and self.policy_http_port is not None:
            updates["agent_gateway"] = f"127.0.0.1:{self.policy_http_port}"
        if name == "curriculum" and "env" in self.ports:
            updates["pools"] = [_point_at_env(pool, self.ports["env"]) for pool in section.pools]
        return section.model_copy(update=updates)

    def _spawn(self, name: str) -> ServiceProcess:
        config_path = self.run_dir / "stack" / f"{name}.yaml"
        config_path.write_text(dump_yaml(self._service_config(name)))
        log_path = self.run_dir / "stack" / f"{name}.log"
        log_path.write_text("")
        command = [sys.executable, "-m", SERVICE_MAIN_MODULES[name], "--config", str(config_path)]
        process = subprocess.Popen(
            dying_with_this_process(command),
            stdout=subprocess.PIPE,
            stderr=open(log_path, "a"),  # noqa: SIM115 - the child owns it
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        service = ServiceProcess(name, process, log_path)
        threading.Thread(target=_read_stdout, args=(service,), daemon=True, name=f"{name}-stdout").start()
        log.info("started %s (pid %d)", name, process.pid)
        return service

    def _await_ready(self, service: ServiceProcess) -> None:
        deadline = time.monotonic() + self.cfg.stack.startup_timeout_s
        while not service._ready.wait(0.2):
            if service.process.poll() is not None:
                raise StackError(service.describe_exit() + "\n" + _tail(service.log_path))
            if time.monotonic() > deadline:
                raise StackError(f"service '{service.name}' did not start within {self.cfg.stack.startup_timeout_s:.0f} s")
        wait_serving(service.address, timeout_s=max(1.0, deadline - time.monotonic()))

    def addresses(self) -> dict[str, str]:
        return {name: service.address for name, service in self.services.items()}

    def check(self) -> None:
        """Raise StackError naming the first service that has died."""
        for service in self.services.values():
            if service.process.poll() is not None:
                raise StackError(service.describe_exit() + "\n" + _tail(service.log_path))

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM every service, wait for them to drain, SIGKILL stragglers."""
        (self.run_dir / "stack" / STATE_FILE).unlink(missing_ok=True)
        for service in self.services.values():
            if service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for service in self.services.values():
            try:
                service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", service.name, grace_s)
                service.process.kill()
                service.process.wait()
        self.services.clear()
        if self.redis is not None:
            self.redis.close()
            self.redis = None

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _point_at_env(pool, env_port: int):
    """A curriculum pool reading from "the env service" reads from the local one."""
    if getattr(pool, "type", None) == "env-service":
        return pool.model_copy(update={"address": f"127.0.0.1:{env_port}"})
    return pool


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "".join(path.read_text().splitlines(keepends=True)[-lines:])
    except OSError:
        return ""

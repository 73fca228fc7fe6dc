"""One agent episode in the sandbox: the gateway bridge, the run, and what its end means.

How an agent run ends decides what the learner may do with it:

    outcome   when                                          whose failure
    ok        exit status 0; stdout is the final output     -
    failed    non-zero exit, or a memory/CPU/output limit   the agent's (the policy's doing)
    timeout   the wall-clock limit                          the agent's
    killed    a signal from outside the sandbox (SIGKILL)   infrastructure
    infra     the sandbox or the gateway bridge failed,     infrastructure
              or the program could not be started

The agent's own failures are episode errors the rollout reports as such (never a reward
of 0); infrastructure failures are excluded from training by the infra-failure rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import os
import shutil
import ssl
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from outrider.envs.sandbox import Limits, LimitHit, RunExtras, Sandbox, SandboxError

GATEWAY_PORT = 8000
"""Port of the gateway inside the sandbox (127.0.0.1 there)."""
AGENT_DIR = "/agent"
"""Where the agent's folder is mounted (read-only)."""
_FORWARDER = Path(__file__).with_name("forwarder.py")
_FORWARDER_INSIDE = "/opt/outrider/forwarder.py"
_SOCKET_DIR_INSIDE = "/run/outrider"
_PYTHON_INSIDE = "/opt/outrider/python"
_CANNOT_START = 127  # forwarder.py: the agent program could not be started
_STDERR_TAIL = 2000


class AgentOutcome(enum.Enum):
    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"
    KILLED = "killed"
    INFRA = "infra"

    @property
    def infrastructure(self) -> bool:
        """Not the agent's doing: the episode says nothing about the policy."""
        return self in (AgentOutcome.KILLED, AgentOutcome.INFRA)


@dataclass
class AgentRun:
    outcome: AgentOutcome
    output: str
    """The agent's stdout, stripped: its final answer."""
    message: str
    """What happened, for logs and episode errors ("" when ok)."""
    exit_code: int
    duration_s: float
    stderr_tail: str


class GatewayBridge:
    """A Unix socket, in a private folder, whose every connection is relayed to one TCP
    address (the policy service's HTTP port). The sandbox gets the folder; the address is
    the env service's own configuration, never a caller's."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None = None):
        """`tls`: connect to the gateway over TLS with this context (the agent's bytes
        travel inside it)."""
        self.host, self.port = host, port
        self.tls = tls
        self.folder: str | None = None
        self.failures: list[str] = []
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def socket_path(self) -> str:
        assert self.folder is not None, "use GatewayBridge as an async context manager"
        return os.path.join(self.folder, "gateway.sock")

    async def __aenter__(self) -> GatewayBridge:
        self.folder = tempfile.mkdtemp(prefix="outrider-agent-")
        os.chmod(self.folder, 0o755)  # the sandbox's unprivileged uid reaches the socket
        self._server = await asyncio.start_unix_server(self._relay, self.socket_path)
        os.chmod(self.socket_path, 0o777)
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5)
        shutil.rmtree(self.folder, ignore_errors=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self.tls, server_hostname=self.host if self.tls else None)
            except OSError as exc:
                self.failures.append(f"the policy gateway at {self.host}:{self.port} is unreachable: {exc}")
                return
            try:
                await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
            finally:
                up_writer.close()
        finally:
            writer.close()
            self._tasks.discard(task)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


def python_packages() -> str:
    """This process's installed packages (its `purelib`), which `host_python_packages` mounts."""
    return sysconfig.get_paths()["purelib"]


async def run_agent(
    sandbox: Sandbox,
    command: list[str],
    bridge: GatewayBridge,
    *,
    session_id: str,
    model: str,
    task: dict,
    limits: Limits,
    directory: str = "",
    host_python_packages: bool = False,
    env: dict[str, str] | None = None,
) -> AgentRun:
    """Run `command` (the agent) for one episode; `task` is JSON-able (id, prompt, ...)."""
    base_url = f"http://127.0.0.1:{GATEWAY_PORT}/sessions/{session_id}/v1"
    binds = [(str(_FORWARDER), _FORWARDER_INSIDE), (bridge.folder, _SOCKET_DIR_INSIDE)]
    variables = {**(env or {}), "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": session_id, "OUTRIDER_MODEL": model,
                 "OUTRIDER_TASK": json.dumps(task), "OUTRIDER_PROMPT": str(task.get("prompt", ""))}
    if directory:
        binds.append((directory, AGENT_DIR))
    if host_python_packages:
        binds.append((python_packages(), _PYTHON_INSIDE))
        variables["PYTHONPATH"] = _PYTHON_INSIDE
    argv = ["python3", _FORWARDER_INSIDE, str(GATEWAY_PORT), f"{_SOCKET_DIR_INSIDE}/gateway.sock", "--", *command]
    try:
        result = await sandbox.arun({"task.json": json.dumps(task)}, limits, command=argv,
                                    extras=RunExtras(ro_binds=tuple(binds), env=tuple(variables.items())))
    except SandboxError as exc:
        return AgentRun(AgentOutcome.INFRA, "", f"the sandbox failed: {exc}", -1, 0.0, "")
    stderr = result.stderr[-_STDERR_TAIL:]
    outcome, message = _judge(result.exit_code, result.limit_hit, bridge.failures, stderr, limits)
    return AgentRun(outcome, result.stdout.strip() if outcome is AgentOutcome.OK else "", message,
                    result.exit_code, result.duration_s, stderr)


def _judge(exit_code: int, limit_hit: LimitHit, bridge_failures: list[str], stderr: str,
           limits: Limits) -> tuple[AgentOutcome, str]:
    if bridge_failures:
        return AgentOutcome.INFRA, bridge_failures[0]
    if limit_hit is LimitHit.WALL_TIME:
        return AgentOutcome.TIMEOUT, f"the agent ran past its wall-clock limit of {limits.wall_time_s:g} s"
    if limit_hit is not LimitHit.NONE:
        return AgentOutcome.FAILED, f"the agent hit its {limit_hit.name.lower().replace('_', ' ')} limit"
    if exit_code == 0:
        return AgentOutcome.OK, ""
    last_line = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    if exit_code == _CANNOT_START:
        return AgentOutcome.INFRA, f"the agent program could not be started: {last_line}"
    if exit_code < 0:
        return AgentOutcome.KILLED, f"the agent was killed by signal {-exit_code}"
    return AgentOutcome.FAILED, f"the agent exited with status {exit_code}" + (f": {last_line}" if last_line else "")

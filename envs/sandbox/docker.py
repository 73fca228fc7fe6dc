"""Docker backend (docker SDK): for hosts with a Docker engine, e.g. a cluster node.

Each run is a fresh container of `options.docker_image` with: no network, a
read-only root filesystem, the workspace bind-mounted read-write at /work, a
size-capped /tmp tmpfs, all capabilities dropped, no-new-privileges, a pids
limit, a memory limit (with no extra swap), RLIMIT_CPU/RLIMIT_FSIZE ulimits, uid
nobody; `python3` is the image's own interpreter. Wall time is enforced by killing the container. The container
is removed afterwards. Output is capped after the run (the log driver keeps at most
four times `max_output_bytes`), not while it runs as with the other backends.
"""

from __future__ import annotations

import math
import time

from outrider.envs.sandbox.base import Limits, LimitHit, RunResult, Sandbox, SandboxError, SandboxOptions
from outrider.envs.sandbox.bwrap import SANDBOX_ENV, WORKDIR
from outrider.envs.sandbox.process import classify

NOBODY = 65534


def container_options(argv: list[str], limits: Limits, workspace: str, uid: int, options: SandboxOptions) -> dict:
    """Keyword arguments of `client.containers.create` for one run (pure, for tests)."""
    import docker.types  # noqa: PLC0415 - the SDK is only needed with this backend

    cpu = max(1, math.ceil(limits.cpu_time_s))
    return {
        "image": options.docker_image,
        "command": argv,
        "user": f"{uid}:{uid}",
        "working_dir": WORKDIR,
        "environment": dict(SANDBOX_ENV),
        "network_disabled": True,
        "network_mode": "none",
        "read_only": True,
        "volumes": {workspace: {"bind": WORKDIR, "mode": "rw"}},
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={options.tmp_bytes}"},
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": limits.max_processes,
        "mem_limit": limits.memory_bytes,
        "memswap_limit": limits.memory_bytes,
        "ulimits": [
            docker.types.Ulimit(name="cpu", soft=cpu, hard=cpu + 1),
            docker.types.Ulimit(name="fsize", soft=limits.max_file_bytes, hard=limits.max_file_bytes),
            docker.types.Ulimit(name="core", soft=0, hard=0),
        ],
        # The engine keeps logs on disk; cap them near the output limit.
        "log_config": docker.types.LogConfig(type="json-file", config={"max-size": str(4 * limits.max_output_bytes)}),
        "detach": True,
    }


def _read_capped(chunks, cap: int) -> bytes:
    """At most cap + 1 bytes of a log stream (one more tells that it was longer)."""
    data = bytearray()
    for chunk in chunks:
        data += chunk
        if len(data) > cap:
            break
    return bytes(data[: cap + 1])


def _client():
    import docker  # noqa: PLC0415

    return docker.from_env(timeout=10)


class DockerSandbox(Sandbox):
    name = "docker"

    @classmethod
    def unavailable_reason(cls, options: SandboxOptions | None = None) -> str | None:
        try:
            _client().ping()
        except Exception as exc:  # noqa: BLE001 - any failure means "no engine here"
            return f"no Docker engine reachable ({type(exc).__name__}: {exc})"
        return None

    def _interpreter(self) -> str:
        return "python3"

    def _needs_identity(self) -> bool:
        return False  # the engine isolates users; the container runs as nobody

    def _execute(self, workspace, argv: list[str], limits: Limits) -> RunResult:
        import docker.errors  # noqa: PLC0415

        client = _client()
        workspace.path.chmod(0o777)  # the container's uid must write there
        start = time.perf_counter()
        try:
            container = client.containers.create(**container_options(argv, limits, str(workspace.path), NOBODY, self.options))
        except docker.errors.DockerException as exc:
            raise SandboxError(f"docker: could not create a container: {exc}") from exc
        stopped_by = None
        try:
            container.start()
            try:
                status = container.wait(timeout=limits.wall_time_s)
                exit_code = int(status.get("StatusCode", -1))
            except Exception:  # noqa: BLE001 - the SDK raises requests' timeout types
                container.kill()
                stopped_by = "wall"
                exit_code = -9
            container.reload()
            oom = bool(container.attrs.get("State", {}).get("OOMKilled"))
            stdout = _read_capped(container.logs(stdout=True, stderr=False, stream=True), limits.max_output_bytes)
            stderr = _read_capped(container.logs(stdout=False, stderr=True, stream=True), limits.max_output_bytes)
        finally:
            container.remove(force=True)
        cap = limits.max_output_bytes
        if exit_code > 128:
            exit_code = -(exit_code - 128)
        if stopped_by == "wall":
            limit = LimitHit.WALL_TIME
        elif oom:
            limit = LimitHit.MEMORY
        elif len(stdout) > cap or len(stderr) > cap:
            limit = LimitHit.OUTPUT
        else:
            limit = classify(exit_code, stderr)
        return RunResult(
            stdout=stdout[:cap].decode(errors="replace"),
            stderr=stderr[:cap].decode(errors="replace"),
            exit_code=exit_code,
            duration_s=time.perf_counter() - start,
            limit_hit=limit,
            backend=self.name,
            stdout_truncated=len(stdout) > cap,
            stderr_truncated=len(stderr) > cap,
        )

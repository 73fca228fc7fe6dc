"""A real service in its own process, for tests that measure that process (its memory, its
event loop) rather than the test's.

    with ServiceProcess.start("policy", cfg, tmp_path) as service:
        service.address, service.http_url, service.rss()

Runs what `outrider up` runs (`python -m outrider.services.<name>.main --config FILE`),
with a launcher that makes the child die with the test process, and reads the
ports from its OUTRIDER_READY / OUTRIDER_HTTP lines.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from outrider.config import dump_yaml
from outrider.services import SERVICE_MAIN_MODULES
from outrider.stack import wait_serving


LAUNCHER = """\
import os, runpy, sys
from outrider.process import die_with_parent
die_with_parent()
if os.getppid() != {parent}:
    sys.exit("the test process ended before the service started")
sys.argv[0] = "{module}"
runpy.run_module("{module}", run_name="__main__", alter_sys=True)
"""
"""`python -m <service main>` that dies with the test process. Not `preexec_fn=die_with_parent`:
that forks the test process, which holds gRPC channels, and gRPC's fork handlers then abort the
child now and then ("epoll_wait error: Bad file descriptor", SIGABRT) before it execs."""



def rss_bytes(pid: int, key: str = "VmRSS") -> int:
    """`VmRSS` (or `VmHWM`, the peak) of a process, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(f"{key} not in /proc/{pid}/status")


def stop_process(process: subprocess.Popen) -> int:
    """SIGTERM (the service drains), SIGKILL after 30 s; the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen
    log_path: Path
    port: int
    http_port: int = 0

    @classmethod
    def start(cls, name: str, cfg, folder: Path, timeout_s: float = 300.0) -> ServiceProcess:
        config_path = folder / f"{name}.yaml"
        config_path.write_text(dump_yaml(cfg))
        log_path = folder / f"{name}.log"
        launcher = LAUNCHER.format(parent=os.getpid(), module=SERVICE_MAIN_MODULES[name])
        process = subprocess.Popen(
            [sys.executable, "-c", launcher, "--config", str(config_path)],
            stdout=subprocess.PIPE, stderr=open(log_path, "w"), text=True,  # noqa: SIM115 - the child owns it
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        fields = _read_ready(process, timeout_s)
        if fields is None:
            process.kill()
            raise RuntimeError(f"{name} service exited with {process.wait()} before READY; log:\n{log_path.read_text()[-3000:]}")
        service = cls(name, process, log_path, int(fields["port"]), int(fields.get("http_port", 0)))
        wait_serving(service.address, timeout_s=60)
        return service

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/v1"

    def rss(self, key: str = "VmRSS") -> int:
        """Resident bytes of the service process (`VmHWM`: its peak so far)."""
        return rss_bytes(self.process.pid, key)

    def stop(self) -> int:
        return stop_process(self.process)

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _read_ready(process: subprocess.Popen, timeout_s: float) -> dict[str, str] | None:
    """The fields of the OUTRIDER_HTTP and OUTRIDER_READY lines; None if the process exits first."""
    found: dict[str, str] = {}
    ready = threading.Event()

    def read() -> None:
        for line in process.stdout:
            if line.startswith(("OUTRIDER_READY", "OUTRIDER_HTTP")):
                found.update(part.split("=", 1) for part in line.split()[1:])
            if line.startswith("OUTRIDER_READY"):
                ready.set()
                break
        ready.set()
        for _ in process.stdout:  # keep draining, so the child never blocks on a full pipe
            pass

    threading.Thread(target=read, daemon=True).start()
    ready.wait(timeout_s)
    return found if "port" in found and process.poll() is None else None

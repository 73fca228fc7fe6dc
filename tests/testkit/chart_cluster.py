"""Start planned chart pods (testkit/chart_pods.py) as local processes: each pod in a
network namespace of its own with its address on a bridge in another namespace the test
creates (nothing is added to the host's network), its /etc/hosts naming the Services, each
container run by testkit/chart_pod_launch.py with its mounts, read-only root and
credentials; the kubelet's probes, once; no restarts.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from testkit.chart_pods import SUBNET, Container, Mount, Pod, hosts_file

LAUNCHER = Path(__file__).with_name("chart_pod_launch.py")
IP = shutil.which("ip") or "/usr/sbin/ip"


def _ip(*args: str) -> None:
    result = subprocess.run([IP, *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def netns_usable() -> str | None:
    """None when this process can make network namespaces, else why not."""
    if os.geteuid() != 0:
        return "needs root (network and mount namespaces, bind mounts, other uids)"
    if not Path(IP).exists() or not shutil.which("unshare"):
        return f"needs iproute2's {IP} and util-linux's unshare"
    name = f"orprobe{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", name)
        _ip("-n", name, "link", "add", "br0", "type", "bridge")
    except (RuntimeError, OSError) as exc:
        return f"`ip netns` is not usable here: {exc}"
    finally:
        subprocess.run([IP, "netns", "del", name], capture_output=True)
    return None


# Run in the bridge's namespace (the node): each probe -> [passed, detail].
_NETWORK_PROBES = r"""
import json, socket, sys, urllib.request
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
results = []
for p in json.loads(sys.argv[1]):
    try:
        if p["type"] == "grpc":
            with grpc.insecure_channel(f"{p['ip']}:{p['port']}") as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=p.get("service", "")), timeout=10)
            results.append([reply.status == health_pb2.HealthCheckResponse.SERVING, str(reply.status)])
        elif p["type"] == "tcpSocket":
            socket.create_connection((p["ip"], p["port"]), timeout=10).close()
            results.append([True, "connected"])
        else:
            with urllib.request.urlopen(f"http://{p['ip']}:{p['port']}{p.get('path', '/')}", timeout=10) as reply:
                results.append([200 <= reply.status < 400, str(reply.status)])
    except Exception as exc:
        results.append([False, repr(exc)])
print(json.dumps(results))
"""


def _untraversable(path: Path) -> list[dict]:
    """The first folder above `path` that other users cannot enter (root's home, holding the
    interpreter), with the one below it on the way to `path`: what the launcher makes reachable."""
    ancestors = [*reversed(path.parents), path]
    for above, below in zip(ancestors, ancestors[1:]):
        if not above.stat().st_mode & 0o001:
            return [{"path": str(above), "keep": [str(below)]}]
    return []


@dataclass
class Running:
    pod: Pod
    container: Container
    process: subprocess.Popen
    log: Path
    spec: dict


class Cluster:
    """Start the planned pods; `stop` ends them and removes every namespace it made (call it
    in a `finally`). Nothing else on the host changes: each container's mount points are made
    in its own overlay layer (chart_pod_launch.py)."""

    def __init__(self, pods: list[Pod], entries: dict[str, list[str]], root: Path):
        self.pods, self.entries, self.root = pods, entries, root
        self.tag = secrets.token_hex(3)
        self.hub = f"or{self.tag}hub"
        self.namespaces: list[str] = []
        self.running: list[Running] = []

    def netns(self, pod: Pod) -> str:
        return f"or{self.tag}p{self.pods.index(pod)}"

    def start(self) -> None:
        self._network()
        for pod in self.pods:
            hosts = self.root / "pods" / pod.name / "hosts"
            hosts.write_text(hosts_file(pod, self.entries))
            hosts.chmod(0o644)
            for container in pod.containers:
                self.running.append(self._start(pod, container, hosts))

    def _network(self) -> None:
        self.namespaces.append(self.hub)
        _ip("netns", "add", self.hub)
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "addr", "add", f"{SUBNET}.1/24", "dev", "br0")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        for index, pod in enumerate(self.pods):
            name = self.netns(pod)
            self.namespaces.append(name)
            _ip("netns", "add", name)
            _ip("link", "add", f"veth{index}", "netns", self.hub, "type", "veth", "peer", "name", "eth0", "netns", name)
            _ip("-n", self.hub, "link", "set", f"veth{index}", "master", "br0", "up")
            _ip("-n", name, "addr", "add", f"{pod.ip}/24", "dev", "eth0")
            _ip("-n", name, "link", "set", "eth0", "up")
            _ip("-n", name, "link", "set", "lo", "up")

    def _start(self, pod: Pod, container: Container, hosts: Path) -> Running:
        mounts = [*container.mounts, Mount(hosts, "/etc/hosts", True)]
        base = self.root / "pods" / pod.name
        hide = _untraversable(Path(os.path.realpath(sys.executable)))
        spec = {
            "hostname": pod.hostname, "argv": container.argv, "env": container.env, "cwd": container.cwd,
            "mounts": [{"source": str(m.source), "target": m.target, "read_only": m.read_only} for m in mounts],
            "hide": hide if container.uid else [], "read_only_root": container.read_only_root,
            "uid": container.uid, "gid": container.gid, "groups": container.groups,
            "no_new_privs": container.no_new_privs, "drop_capabilities": container.drop_capabilities,
            "layer": str(base / f"{container.name}.layer"),
        }
        (base / f"{container.name}.json").write_text(json.dumps(spec, indent=1))
        log = base / f"{container.name}.log"
        command = [IP, "netns", "exec", self.netns(pod), "unshare", "--uts",
                   sys.executable, str(LAUNCHER), str(base / f"{container.name}.json")]
        with open(log, "w") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/bin")})
        return Running(pod, container, process, log, spec)

    def failing_probes(self) -> dict[str, str]:
        """Every probe of every running container, run once as the kubelet runs it: gRPC,
        TCP and HTTP probes from the node (the bridge's namespace) to the pod's address, exec
        probes inside a container made from the same spec. `pod/container probe` -> why it
        failed, for those that did."""
        network, failed = [], {}
        for running in self.running:
            if running.process.poll() is not None:
                continue
            for kind, probe in running.container.probes.items():
                label = f"{running.pod.name}/{running.container.name} {kind}"
                if "exec" in probe:
                    why = self._exec_probe(running, probe["exec"]["command"], f"{kind}-probe")
                    if why:
                        failed[label] = why
                    continue
                (handler,) = [h for h in ("grpc", "tcpSocket", "httpGet") if h in probe]
                port = probe[handler]["port"]
                port = running.container.ports.get(port) if isinstance(port, str) else port
                if port is None:
                    failed[label] = f"names port {probe[handler]['port']!r}, which the container does not declare"
                    continue
                network.append((label, {"type": handler, "ip": running.pod.ip, "port": port} | {
                    k: v for k, v in probe[handler].items() if k in ("service", "path")}))
        result = subprocess.run([IP, "netns", "exec", self.hub, sys.executable, "-c", _NETWORK_PROBES,
                                 json.dumps([p for _, p in network])], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        for (label, _), (ok, detail) in zip(network, json.loads(result.stdout)):
            if not ok:
                failed[label] = detail
        return failed

    def _exec_probe(self, running: Running, command: list[str], name: str) -> str | None:
        result = self.exec(running, command, name)
        return None if result.returncode == 0 else f"exit {result.returncode}: {(result.stdout + result.stderr)[-500:]}"

    def exec(self, running: Running, command: list[str], name: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """`kubectl exec`, near enough: `command` in a container made from the same spec, in the
        pod's network namespace (`env`: instead of the container's); `name` keeps its files apart."""
        base = self.root / "pods" / running.pod.name
        spec = running.spec | {"argv": command, "layer": str(base / f"{running.container.name}.{name}.layer")}
        if env is not None:
            spec["env"] = env
        path = base / f"{running.container.name}.{name}.json"
        path.write_text(json.dumps(spec))
        return subprocess.run([IP, "netns", "exec", self.netns(running.pod), "unshare", "--uts", sys.executable,
                               str(LAUNCHER), str(path)], capture_output=True, text=True, timeout=60)

    def find(self, component: str) -> Running:
        (found,) = [r for r in self.running if r.pod.labels.get("app.kubernetes.io/component") == component]
        return found

    def exits(self) -> dict[str, int]:
        """pod/container -> exit status of those that ended."""
        return {f"{r.pod.name}/{r.container.name}": r.process.returncode for r in self.running if r.process.poll() is not None}

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(f"===== {r.pod.name}/{r.container.name} (exit {r.process.poll()})\n{r.log.read_text()[-tail:]}"
                         for r in self.running)

    def wait(self, running: Running, timeout: float, may_exit: Callable[[Running], bool]) -> int:
        """The exit status of `running`; fails when another container ends first (and
        `may_exit` does not allow it) or after `timeout` seconds, with every log's end."""
        deadline = time.monotonic() + timeout
        while (code := running.process.poll()) is None:
            ended = [r for r in self.running if r is not running and r.process.poll() is not None and not may_exit(r)]
            if ended:
                raise AssertionError(f"{[f'{r.pod.name}/{r.container.name}' for r in ended]} ended:\n{self.logs()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{running.pod.name} did not finish within {timeout} s:\n{self.logs()}")
            time.sleep(0.5)
        return code

    def stop(self) -> None:
        for running in self.running:
            if running.process.poll() is None:
                os.killpg(running.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for running in self.running:
            try:
                running.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(running.process.pid, signal.SIGKILL)
                running.process.wait()
        # Children that left the process group (torchrun's ranks, Celery's pool) live in the
        # pods' namespaces: whatever is still in one is killed before it goes.
        for name in reversed(self.namespaces):
            pids = subprocess.run([IP, "netns", "pids", name], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            subprocess.run([IP, "netns", "del", name], capture_output=True)

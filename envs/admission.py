"""What the env service admits: a spec from the network is untrusted input.

Any client of the env service can call RegisterEnv, so before a spec is stored:

* **Python entry points** must come from a module on `allowed_python_modules`
  (the module itself or a submodule of an entry). A module this process has
  not imported yet is imported first in a child process (`probe_import`): an
  exception, `SystemExit`, `os._exit`, a crash or a hang there refuses the
  spec naming the entry point, and the server never runs that module.
* **Sandbox limits** of the spec: each non-zero one at most the service's
  `max_sandbox_limits` (RLIMITs are per process: a spec must not raise them
  past what the host was sized for).
* **Remote endpoints**: the address must match `allowed_remote_endpoints`, and
  is refused whatever that list says when it is a gRPC target scheme
  (`unix:...` would open a socket file of the server's host), a link-local
  address (where cloud metadata services answer), the unspecified address,
  multicast or broadcast, or a metadata host name. Numeric host forms that the
  resolver reads as IPv4 (`2852039166`, `0xa9fea9fe`, `0251.0376.0251.0376`)
  are checked as the address they stand for. Nothing here opens a connection
  or resolves a name: a host name is judged by the allow-list alone.
* **OpenEnv base URLs**: the same rules for the URL's `host:port` (the port
  from the scheme when the URL gives none), against the same allow-list; the
  scheme is http or https (validate_spec), so no gRPC scheme can occur.

All checks are pure functions of the spec and the config, except the probe.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from outrider.config.env import EnvServiceConfig, SandboxMaximaConfig
from outrider.envs.openenv import endpoint_host_port
from outrider.proto.v1 import common_pb2, env_pb2

Problem = tuple[str, str]

# Target schemes gRPC resolves itself rather than as host:port (`unix:80` is a socket file named 80).
GRPC_SCHEMES = ("unix", "unix-abstract", "vsock", "ipv4", "ipv6", "dns", "xds", "google-c2p")
# Names cloud providers give their instance metadata service.
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "instance-data", "instance-data.ec2.internal"})
PROBE_READY = "OUTRIDER_IMPORT_OK"

# The child: the server's sys.path, stdout/stderr to /dev/null (a module that prints
# gigabytes costs nothing here), one line on a private copy of stdout when the import ends.
_PROBE = f"""
import importlib, json, os, sys
request = json.loads(sys.stdin.read())
sys.path[:] = request["path"]
report = os.fdopen(os.dup(1), "w")
quiet = os.open(os.devnull, os.O_WRONLY)
os.dup2(quiet, 1)
os.dup2(quiet, 2)
try:
    importlib.import_module(request["module"])
except BaseException as exc:
    report.write(json.dumps({{"error": f"{{type(exc).__name__}}: {{exc}}"[:500]}}) + "\\n")
    report.flush()
    os._exit(3)
report.write("{PROBE_READY}\\n")
report.flush()
os._exit(0)
"""


@dataclass(frozen=True)
class Admission:
    """The service's rules for specs (from `EnvServiceConfig`)."""

    allowed_modules: tuple[str, ...]
    import_timeout_s: float
    max_limits: SandboxMaximaConfig
    allowed_endpoints: tuple[str, ...]

    @classmethod
    def from_config(cls, cfg: EnvServiceConfig | None = None) -> Admission:
        """The rules of `cfg` (default: an env service with the default config)."""
        cfg = cfg or EnvServiceConfig()
        return cls(
            tuple(cfg.allowed_python_modules),
            cfg.entry_point_import_timeout_s,
            cfg.max_sandbox_limits,
            tuple(cfg.allowed_remote_endpoints),
        )

    def spec_problems(self, spec: env_pb2.EnvSpec) -> list[Problem]:
        """Limits above the maxima and refused remote addresses (the module rules: `module_problems`)."""
        problems = sandbox_limit_problems(spec.sandbox, self.max_limits)
        if spec.WhichOneof("kind") == "remote":
            problems += remote_address_problems(spec.remote.address, self.allowed_endpoints)
        if spec.WhichOneof("kind") == "openenv":
            problems += openenv_url_problems(spec.openenv.base_url, self.allowed_endpoints)
        return problems

    def module_problems(self, entry_point: str) -> list[Problem]:
        """The allow-list, then the import in a child process (skipped for modules already imported here)."""
        module = entry_point.partition(":")[0]
        if not module_allowed(module, self.allowed_modules):
            allowed = ", ".join(self.allowed_modules) or "none"
            return [("python.entry_point", f"module {module!r} of {entry_point!r} is not in allowed_python_modules ({allowed})")]
        if module in sys.modules:
            return []  # already imported in this process: importing it again runs nothing
        failure = probe_import(module, self.import_timeout_s)
        return [("python.entry_point", f"{entry_point!r}: {failure}")] if failure else []


def module_allowed(module: str, allowed: Sequence[str]) -> bool:
    """`module` is an entry of `allowed` or a submodule of one (dotted-name prefix, not a string prefix)."""
    return any(module == prefix or module.startswith(prefix + ".") for prefix in allowed)


def probe_import(module: str, timeout_s: float) -> str | None:
    """Import `module` in a child process; None when that worked, else what went wrong.

    The child gets this process's sys.path and its own session, so a module
    that starts processes or hangs is killed as a whole group afterwards.
    """
    request = json.dumps({"module": module, "path": sys.path}).encode()
    child = subprocess.Popen(
        [sys.executable, "-c", _PROBE],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        out, _ = child.communicate(request, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(child.pid)
        child.communicate()
        return f"importing {module!r} did not finish within {timeout_s:g} s (entry_point_import_timeout_s)"
    finally:
        _kill_group(child.pid)
    return _probe_outcome(module, child.returncode, out.decode(errors="replace").splitlines())


def _probe_outcome(module: str, returncode: int, lines: list[str]) -> str | None:
    last = lines[-1] if lines else ""
    if returncode == 0 and last == PROBE_READY:
        return None
    where = f"importing {module!r} in a child process"
    if returncode == 3 and last.startswith("{"):
        return f"{where} raised {json.loads(last)['error']}"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"{where} crashed: killed by {name}"
    return f"{where} ended the process with exit status {returncode} (os._exit or a crash)"


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def sandbox_limit_problems(limits: common_pb2.SandboxLimits, maxima: SandboxMaximaConfig) -> list[Problem]:
    """Every non-zero limit of a spec above the service's maximum of that limit."""
    problems = []
    for descriptor, value in limits.ListFields():
        cap = getattr(maxima, descriptor.name)
        if value > cap:
            problems.append((
                f"sandbox.{descriptor.name}",
                f"{_number(value)} is above the service's maximum of {_number(cap)} (max_sandbox_limits.{descriptor.name})",
            ))
    return problems


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def remote_address_problems(address: str, allowed: Sequence[str]) -> list[Problem]:
    """Why `address` ("host:port") may not be proxied to; empty when it may."""
    scheme = address.partition(":")[0].lower()
    if scheme in GRPC_SCHEMES:
        return [("remote.address", f"{address!r}: gRPC target schemes ({scheme}:) are refused; give 'host:port'")]
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return []  # not host:port at all: validate_spec reports that
    return _endpoint_problems("remote.address", address, host, address, allowed)


def openenv_url_problems(base_url: str, allowed: Sequence[str]) -> list[Problem]:
    """Why an OpenEnv `base_url` may not be connected to; empty when it may. Its `host:port`
    (the scheme's port when the URL names none) is held to the remote-address rules."""
    endpoint = endpoint_host_port(base_url)
    if endpoint is None:
        return []  # not an http(s) URL with a host: validate_spec reports that
    host, port = endpoint
    return _endpoint_problems("openenv.base_url", base_url, host, f"{host}:{port}", allowed)


def _endpoint_problems(path: str, spelled: str, host: str, address: str, allowed: Sequence[str]) -> list[Problem]:
    shown = repr(spelled) if address in spelled else f"{spelled!r} ({address})"  # the port the scheme implies
    reason = forbidden_host(host)
    if reason is not None:
        return [(path, f"{shown} is refused: {reason}")]
    if not any(endpoint_matches(address, pattern) for pattern in allowed):
        listed = ", ".join(allowed) or "none"
        return [(path, f"{shown} matches no pattern of allowed_remote_endpoints ({listed})")]
    return []


def endpoint_matches(address: str, pattern: str) -> bool:
    """`host:port` against a `host:port` pattern of shell wildcards, case-insensitive.

    A bracketed pattern host (`[::1]`, `[fd00::*]`) matches a bracketed address host
    by what is inside the brackets (they are not a character class there).
    """
    host, _, port = address.lower().rpartition(":")
    pattern_host, _, pattern_port = pattern.lower().rpartition(":")
    if not fnmatch.fnmatchcase(port, pattern_port):
        return False
    if pattern_host.startswith("["):
        return host.startswith("[") and fnmatch.fnmatchcase(host[1:-1], pattern_host[1:-1])
    return fnmatch.fnmatchcase(host, pattern_host)


def forbidden_host(host: str) -> str | None:
    """Why `host` is never a remote environment's host, whatever the allow-list says; None if it may be."""
    name = host.removeprefix("[").removesuffix("]").rstrip(".").lower()
    if name in METADATA_HOSTS:
        return "a cloud metadata host name"
    ip = literal_ip(name)
    if ip is None:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_link_local:
        return f"{ip} is a link-local address (where cloud metadata services answer)"
    if ip.is_unspecified:
        return f"{ip} is the unspecified address"
    if ip.is_multicast or ip == ipaddress.IPv4Address(2**32 - 1):
        return f"{ip} is a multicast or broadcast address"
    return None


def literal_ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address `name` spells, in any form the system resolver accepts as a number; None for a host name."""
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        pass
    try:
        # inet_aton reads the legacy forms too: one number, hex and octal parts, "a.b.c" with c 16 bits.
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except OSError:
        return None

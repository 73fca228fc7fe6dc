"""RegisterEnv from an untrusted client, over real gRPC: entry points only from allow-listed
modules, imported first in a child process (an exit or crash there is a registration error and
the service keeps serving); sandbox limits capped at the service's maxima; remote addresses on
an allow-list, never a `unix:` target or a link-local/metadata address.

The refused addresses are inputs to validation only: a refused spec is never stored, and a
stored remote spec is not contacted at registration, so no test here opens a connection to any
of them (the accepted ones are on 127.0.0.1)."""

from __future__ import annotations

import sys
import textwrap

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from outrider.proto.v1 import common_pb2, env_pb2

pytestmark = pytest.mark.sandbox  # the env service builds a sandbox

BUILTINS = ["code", "guess-number", "math", "nim", "python-tool"]
GOOD_ENV = textwrap.dedent('''
    from outrider.envs import Environment, Message, StepResult, Task

    class OneTask(Environment):
        def tasks(self, split):
            return [Task("train-0", "train")]

        async def reset(self, task_id, seed):
            return [Message("user", "say anything")]

        async def step(self, action):
            return StepResult([], reward=1.0, done=True, solved=True)
''')


async def refused(call, code=grpc.StatusCode.INVALID_ARGUMENT) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    return info.value.details()


async def still_serving(built, stub, extra: tuple[str, ...] = ()) -> None:
    assert [spec.name for spec in (await stub.ListEnvs(env_pb2.ListEnvsRequest())).envs] == sorted([*BUILTINS, *extra])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="outrider.v1.EnvService"))
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def python_spec(name: str, entry_point: str, **fields) -> env_pb2.EnvSpec:
    return env_pb2.EnvSpec(name=name, python=env_pb2.PythonEntryPoint(entry_point=entry_point), **fields)


def remote_spec(name: str, address: str) -> env_pb2.EnvSpec:
    return env_pb2.EnvSpec(name=name, remote=env_pb2.RemoteEndpoint(address=address, timeout_s=5))


# --- entry points -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "body", "expected"),
    [
        ("system_exit", "raise SystemExit(3)", "raised SystemExit: 3"),
        ("os_exit", "import os\nos._exit(7)", "ended the process with exit status 7 (os._exit or a crash)"),
        ("segfault", "import ctypes\nctypes.string_at(0)", "crashed: killed by SIGSEGV"),  # reads address 0
        ("exception", "raise ImportError('no such thing here')", "raised ImportError: no such thing here"),
    ],
)
async def test_an_entry_point_module_that_dies_on_import_is_a_registration_error(start_env_service, tmp_path, monkeypatch, kind, body, expected):
    module = f"outrider_test_dying_{kind}"
    (tmp_path / f"{module}.py").write_text(body + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "outrider_test_good_env.py").write_text(GOOD_ENV)
    built, stub = await start_env_service(allowed_python_modules=[module, "outrider_test_good_env"])
    entry_point = f"{module}:Env"
    details = await refused(stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=python_spec("dying", entry_point))))
    assert details == f"spec.python.entry_point: {entry_point!r}: importing {module!r} in a child process {expected}"
    assert module not in sys.modules  # the server itself never ran the module
    await still_serving(built, stub)
    # ... and registers the next (good) spec as usual: its module passes the child import.
    monkeypatch.delitem(sys.modules, "outrider_test_good_env", raising=False)
    await stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=python_spec("good", "outrider_test_good_env:OneTask")))
    await still_serving(built, stub, ("good",))


async def test_a_module_off_the_allow_list_is_never_imported(start_env_service, tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "outrider_test_marker_env.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    built, stub = await start_env_service()  # default allow-list: outrider.envs.builtin, outrider.envs.examples
    details = await refused(stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=python_spec("m", "outrider_test_marker_env:Env"))))
    assert details == (
        "spec.python.entry_point: module 'outrider_test_marker_env' of 'outrider_test_marker_env:Env' is not in "
        "allowed_python_modules (outrider.envs.builtin, outrider.envs.examples)"
    )
    assert not marker.exists()  # not even in a child process
    # A dotted-name prefix, not a string prefix: `outrider.envs.builtinx` is not under `outrider.envs.builtin`.
    details = await refused(stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=python_spec("b", "outrider.envs.builtinx:Env"))))
    assert "module 'outrider.envs.builtinx'" in details and "not in allowed_python_modules" in details
    details = await refused(stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=python_spec("s", "subprocess:Popen"))))
    assert "module 'subprocess'" in details
    await stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=python_spec("math-again", "outrider.envs.builtin.math_env:MathEnv")))
    await still_serving(built, stub, ("math-again",))


async def test_a_module_that_hangs_on_import_is_refused_after_the_timeout(start_env_service, tmp_path, monkeypatch):
    (tmp_path / "outrider_test_hanging_env.py").write_text("import time\ntime.sleep(600)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    built, stub = await start_env_service(allowed_python_modules=["outrider_test_hanging_env"], entry_point_import_timeout_s=1)
    details = await refused(stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=python_spec("h", "outrider_test_hanging_env:Env"))))
    assert details == (
        "spec.python.entry_point: 'outrider_test_hanging_env:Env': importing 'outrider_test_hanging_env' did not "
        "finish within 1 s (entry_point_import_timeout_s)"
    )
    await still_serving(built, stub)


# --- sandbox limits ------------------------------------------------------------------


async def test_sandbox_limits_above_the_maxima_are_refused_naming_each(start_env_service):
    built, stub = await start_env_service()
    greedy = common_pb2.SandboxLimits(wall_time_s=3600, memory_bytes=256 * 2**30, max_processes=4096, cpu_time_s=2)
    spec = python_spec("greedy", "outrider.envs.builtin.code_env:CodeEnv", sandbox=greedy)
    details = await refused(stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=spec)))
    # The default maxima: 300 s, 8 GiB = 8589934592 bytes, 256 processes; cpu_time_s 2 is within its 300.
    assert details.split("; ") == [
        "spec.sandbox.wall_time_s: 3600 is above the service's maximum of 300 (max_sandbox_limits.wall_time_s)",
        "spec.sandbox.memory_bytes: 274877906944 is above the service's maximum of 8589934592 (max_sandbox_limits.memory_bytes)",
        "spec.sandbox.max_processes: 4096 is above the service's maximum of 256 (max_sandbox_limits.max_processes)",
    ]
    await still_serving(built, stub)


async def test_configured_maxima_refuse_just_above_and_accept_at_the_limit(start_env_service):
    # Only `math`: the built-in `code` spec asks for 10 s (test_a_configured_environment_above_the_maxima_stops_the_start).
    _, stub = await start_env_service(builtin_envs=["math"], max_sandbox_limits={"wall_time_s": 5, "max_processes": 40})
    over = python_spec("code-over", "outrider.envs.builtin.code_env:CodeEnv", sandbox=common_pb2.SandboxLimits(wall_time_s=5.5))
    details = await refused(stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=over)))
    assert details == "spec.sandbox.wall_time_s: 5.5 is above the service's maximum of 5 (max_sandbox_limits.wall_time_s)"
    at = python_spec("code-at", "outrider.envs.builtin.code_env:CodeEnv", sandbox=common_pb2.SandboxLimits(wall_time_s=5, max_processes=40))
    stored = (await stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=at))).spec
    assert (stored.sandbox.wall_time_s, stored.sandbox.max_processes) == (5.0, 40)


# --- remote endpoints ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("unix:80", "gRPC target schemes (unix:) are refused"),  # gRPC would open a socket file named 80
        ("unix:/run/outrider.sock", "gRPC target schemes (unix:) are refused"),
        ("unix-abstract:x:1", "gRPC target schemes (unix-abstract:) are refused"),
        ("169.254.169.254:80", "169.254.169.254 is a link-local address"),
        ("2852039166:80", "169.254.169.254 is a link-local address"),  # the same address as one number
        ("0xa9fea9fe:80", "169.254.169.254 is a link-local address"),
        ("[fe80::1]:50071", "fe80::1 is a link-local address"),
        ("[::ffff:a9fe:a9fe]:80", "169.254.169.254 is a link-local address"),  # IPv4-mapped
        ("metadata.google.internal:80", "a cloud metadata host name"),
        ("0.0.0.0:50071", "0.0.0.0 is the unspecified address"),
        ("envs.example.invalid:50071", "matches no pattern of allowed_remote_endpoints (127.0.0.1:*, localhost:*, [::1]:*)"),
    ],
)
async def test_remote_addresses_off_the_rules_are_refused(start_env_service, address, reason):
    built, stub = await start_env_service()
    details = await refused(stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=remote_spec("far", address))))
    assert "spec.remote.address:" in details and reason in details, details
    await still_serving(built, stub)


async def test_the_remote_allow_list_is_configurable_but_never_admits_link_local(start_env_service):
    _, stub = await start_env_service(allowed_remote_endpoints=["127.0.0.1:5007?", "*:443"])
    stored = (await stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=remote_spec("near", "127.0.0.1:50071")))).spec
    assert stored.remote.address == "127.0.0.1:50071"
    details = await refused(stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=remote_spec("other-port", "127.0.0.1:1"))))
    assert details == (
        "spec.remote.address: '127.0.0.1:1' matches no pattern of allowed_remote_endpoints (127.0.0.1:5007?, *:443)"
    )
    details = await refused(stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=remote_spec("meta", "169.254.169.254:443"))))
    assert details == (
        "spec.remote.address: '169.254.169.254:443' is refused: 169.254.169.254 is a link-local address "
        "(where cloud metadata services answer)"
    )


async def test_a_configured_environment_above_the_maxima_stops_the_start(start_env_service):
    # The built-in `code` spec asks for a 10 s wall limit: the config's own envs are capped too.
    with pytest.raises(OSError) as info:
        await start_env_service(builtin_envs=["code"], max_sandbox_limits={"wall_time_s": 5})
    assert "builtin_params.code" in str(info.value)
    assert "sandbox.wall_time_s: 10 is above the service's maximum of 5 (max_sandbox_limits.wall_time_s)" in str(info.value)

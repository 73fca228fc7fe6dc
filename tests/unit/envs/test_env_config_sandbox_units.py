"""EnvServiceConfig bounds, and the pure parts of the sandbox: limits, file names, limit classification, docker options."""

from __future__ import annotations

import signal

import pytest

from outrider.config import ConfigError, parse_config
from outrider.config.env import EnvServiceConfig
from outrider.envs.sandbox import Limits, LimitHit, SandboxOptions, SandboxUnavailable, make_sandbox
from outrider.envs.sandbox.base import program_files
from outrider.envs.sandbox.docker import DockerSandbox, container_options
from outrider.envs.sandbox.limits import nproc_limit, prlimit_argv
from outrider.envs.sandbox.process import classify
from outrider.proto.v1 import common_pb2


def test_env_config_defaults_register_every_builtin():
    cfg = EnvServiceConfig()
    assert cfg.builtin_envs == ["math", "code", "python-tool", "guess-number", "nim"]
    assert cfg.sandbox.backend == "auto"


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"session_ttl_s": 0}, "session_ttl_s"),
        ({"max_sessions": 0}, "max_sessions"),
        ({"max_action_bytes": 1}, "max_action_bytes"),
        ({"builtin_envs": ["math", "chess"]}, "builtin_envs[1]"),
        ({"builtin_envs": ["math", "math"]}, "builtin_envs"),
        ({"sandbox": {"backend": "chroot"}}, "sandbox.backend"),
        ({"sandbox": {"limits": {"wall_time_s": 0}}}, "sandbox.limits.wall_time_s"),
        ({"sandbox": {"limits": {"memory_bytes": 1024}}}, "sandbox.limits.memory_bytes"),
        ({"sandbox": {"uid_base": 2**31}}, "sandbox.uid_base"),
        ({"remote_timeout_s": -1}, "remote_timeout_s"),
        ({"sandbox": {"cgroups": "v3"}}, "sandbox.cgroups"),
        ({"sandbox": {"cgroup_parent": "../escape"}}, "sandbox.cgroup_parent"),
        ({"sandbox": {"cgroup_parent": "a//b"}}, "sandbox.cgroup_parent"),
        ({"sandbox": {"cpu_cores": 0}}, "sandbox.cpu_cores"),
    ],
)
def test_env_config_bounds_fail_with_the_field_path(data, path):
    with pytest.raises(ConfigError) as info:
        parse_config({"kind": "env", **data})
    assert path in [p for p, _ in info.value.problems]


def test_limits_merge_takes_only_non_zero_proto_fields():
    base = Limits(wall_time_s=10, cpu_time_s=10, memory_bytes=1 << 29, max_processes=32, max_output_bytes=1 << 16, max_file_bytes=1 << 24)
    merged = base.merged(common_pb2.SandboxLimits(wall_time_s=2.5, max_processes=4))
    assert merged == Limits(wall_time_s=2.5, cpu_time_s=10, memory_bytes=1 << 29, max_processes=4, max_output_bytes=1 << 16, max_file_bytes=1 << 24)
    assert base.merged(None) is base
    assert Limits.from_config(EnvServiceConfig().sandbox.limits).to_proto().wall_time_s == 10.0
    with pytest.raises(ValueError, match="wall_time_s"):
        Limits(wall_time_s=0)


def test_program_files_accepts_source_or_relative_files_only():
    assert program_files("print(1)") == {"main.py": b"print(1)"}
    assert program_files({"main.py": "x", "data/in.bin": b"\0"}) == {"main.py": b"x", "data/in.bin": b"\0"}
    for bad in ("/etc/passwd", "../up.py", "a/../../b", ""):
        with pytest.raises(ValueError, match="relative path"):
            program_files({bad: "x"})


@pytest.mark.parametrize(
    ("exit_code", "stderr", "expected"),
    [
        (0, b"MemoryError", LimitHit.NONE),  # ended on its own
        (-signal.SIGXCPU, b"", LimitHit.CPU_TIME),
        (-signal.SIGXFSZ, b"", LimitHit.FILE_SIZE),
        (1, b"Traceback...\nMemoryError\n", LimitHit.MEMORY),
        (1, b"OSError: [Errno 27] File too large", LimitHit.FILE_SIZE),
        (1, b"BlockingIOError: [Errno 11] Resource temporarily unavailable", LimitHit.PROCESSES),
        (1, b"ZeroDivisionError", LimitHit.NONE),
    ],
)
def test_limit_classification(exit_code, stderr, expected):
    assert classify(exit_code, stderr) is expected


def test_prlimit_arguments_round_cpu_up_and_add_a_hard_second():
    limits = Limits(cpu_time_s=2.2, memory_bytes=1 << 28, max_file_bytes=1 << 20)
    argv = prlimit_argv(limits, nproc=40)
    assert argv == ["prlimit", f"--as={1 << 28}", "--cpu=3:4", "--nproc=40", f"--fsize={1 << 20}", "--core=0", "--"]
    # With a leased uid only the run's processes plus the wrapper's count.
    assert nproc_limit(Limits(max_processes=16), own_uid=True, wrapper_processes=2) == 18
    # With a pids cgroup RLIMIT_NPROC is left out.
    assert prlimit_argv(limits, nproc=None) == ["prlimit", f"--as={1 << 28}", "--cpu=3:4", f"--fsize={1 << 20}", "--core=0", "--"]


def test_docker_container_options_carry_every_limit():
    limits = Limits(wall_time_s=5, cpu_time_s=3, memory_bytes=1 << 28, max_processes=16, max_output_bytes=1 << 16, max_file_bytes=1 << 20)
    options = container_options(["python3", "main.py"], limits, "/host/ws", 65534, SandboxOptions(tmp_bytes=1 << 24))
    assert options["network_mode"] == "none" and options["network_disabled"] is True
    assert options["read_only"] is True and options["cap_drop"] == ["ALL"]
    assert options["pids_limit"] == 16 and options["mem_limit"] == 1 << 28 and options["memswap_limit"] == 1 << 28
    assert options["volumes"] == {"/host/ws": {"bind": "/work", "mode": "rw"}}
    assert options["tmpfs"] == {"/tmp": f"rw,nosuid,nodev,size={1 << 24}"}
    ulimits = {u["Name"]: (u["Soft"], u["Hard"]) for u in options["ulimits"]}
    assert ulimits == {"cpu": (3, 4), "fsize": (1 << 20, 1 << 20), "core": (0, 0)}
    assert options["user"] == "65534:65534"


def test_docker_backend_reports_why_it_is_unavailable():
    if DockerSandbox.unavailable_reason() is None:
        pytest.skip("a Docker engine is reachable here, so the unavailable path cannot be exercised")
    with pytest.raises(SandboxUnavailable, match="docker: no Docker engine reachable"):
        make_sandbox("docker")


def test_unknown_backend_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid: auto, bwrap, gvisor, docker, subprocess"):
        make_sandbox("chroot")

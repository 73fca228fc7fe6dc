"""The env service's admission rules as pure functions: module allow-list, sandbox maxima, remote
addresses (literal strings as validation inputs only: nothing here resolves or connects), the
registry applying them, and the config fields behind them."""

from __future__ import annotations

import pytest

from outrider.config import ConfigError, parse_config
from outrider.config.env import EnvServiceConfig, SandboxMaximaConfig
from outrider.envs.admission import (
    Admission, endpoint_matches, forbidden_host, literal_ip, module_allowed, remote_address_problems, sandbox_limit_problems,
)
from outrider.envs.registry import EnvRegistry, builtin_spec
from outrider.envs.spec import SpecError
from outrider.proto.v1 import common_pb2, env_pb2

LOOPBACK = ("127.0.0.1:*", "localhost:*", "[::1]:*")


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("outrider.envs.builtin", True),
        ("outrider.envs.builtin.math_env", True),
        ("outrider.envs.builtinx", False),  # a dotted-name prefix, not a string prefix
        ("outrider.envs", False),
        ("outrider.envs.examples.remote_counter.server", True),
        ("subprocess", False),
    ],
)
def test_module_allow_list_matches_dotted_prefixes(module, allowed):
    assert module_allowed(module, ["outrider.envs.builtin", "outrider.envs.examples"]) is allowed


def test_sandbox_limits_are_compared_field_by_field_with_the_maxima():
    maxima = SandboxMaximaConfig(wall_time_s=60, max_processes=16)
    limits = common_pb2.SandboxLimits(wall_time_s=60.5, cpu_time_s=60, max_processes=16, max_output_bytes=2**30)
    assert sandbox_limit_problems(limits, maxima) == [
        ("sandbox.wall_time_s", "60.5 is above the service's maximum of 60 (max_sandbox_limits.wall_time_s)"),
        # 1 GiB against the default 16 MiB = 16777216 bytes
        ("sandbox.max_output_bytes", "1073741824 is above the service's maximum of 16777216 (max_sandbox_limits.max_output_bytes)"),
    ]
    assert sandbox_limit_problems(common_pb2.SandboxLimits(), maxima) == []  # zero: the service's defaults


@pytest.mark.parametrize(
    ("name", "spelled"),
    [
        ("169.254.169.254", "169.254.169.254"),
        ("2852039166", "169.254.169.254"),  # 169*2^24 + 254*2^16 + 169*2^8 + 254
        ("0xa9fea9fe", "169.254.169.254"),
        ("0251.0376.0251.0376", "169.254.169.254"),  # octal parts
        ("169.254.43518", "169.254.169.254"),  # last part 16 bits: 169*256 + 254 = 43518
        ("::1", "::1"),
        ("localhost", None),
        ("envs.example.invalid", None),
    ],
)
def test_literal_ip_reads_every_numeric_form_the_resolver_would(name, spelled):
    ip = literal_ip(name)
    assert (str(ip) if ip is not None else None) == spelled


@pytest.mark.parametrize(
    ("host", "fragment"),
    [
        ("169.254.169.254", "link-local"),
        ("[fe80::1]", "link-local"),
        ("[::ffff:a9fe:a9fe]", "169.254.169.254 is a link-local"),
        ("0", "0.0.0.0 is the unspecified address"),
        ("[::]", ":: is the unspecified address"),
        ("metadata.google.internal.", "metadata host name"),  # a trailing dot is the same name
        ("METADATA", "metadata host name"),
        ("127.0.0.1", None),
        ("localhost", None),
    ],
)
def test_hosts_that_are_never_admitted(host, fragment):
    reason = forbidden_host(host)
    assert (reason is None) if fragment is None else (fragment in reason)


def test_remote_address_rules_order_scheme_then_host_then_allow_list():
    assert remote_address_problems("127.0.0.1:50071", LOOPBACK) == []
    assert remote_address_problems("[::1]:50071", LOOPBACK) == []
    assert remote_address_problems("LOCALHOST:1", LOOPBACK) == []  # patterns are case-insensitive
    assert remote_address_problems("unix:80", ["*:*"]) == [
        ("remote.address", "'unix:80': gRPC target schemes (unix:) are refused; give 'host:port'")
    ]
    assert remote_address_problems("169.254.169.254:80", ["*:*"]) == [
        ("remote.address", "'169.254.169.254:80' is refused: 169.254.169.254 is a link-local address (where cloud metadata services answer)")
    ]
    assert remote_address_problems("envs.example.invalid:50071", LOOPBACK) == [
        ("remote.address", "'envs.example.invalid:50071' matches no pattern of allowed_remote_endpoints (127.0.0.1:*, localhost:*, [::1]:*)")
    ]
    assert remote_address_problems("envs.example.invalid:50071", ["*.invalid:5007?"]) == []
    assert remote_address_problems("no-port", LOOPBACK) == []  # not host:port: validate_spec's to report


@pytest.mark.parametrize(
    ("address", "pattern", "matches"),
    [
        ("[::1]:50071", "[::1]:*", True),  # brackets of an IPv6 host are literal, not a character class
        ("1:50071", "[::1]:*", False),
        ("[::2]:50071", "[::1]:*", False),
        ("env3.svc:50071", "env[0-9].svc:5007?", True),  # in a host name they are a class
        ("env3.svc:50080", "env[0-9].svc:5007?", False),
    ],
)
def test_endpoint_patterns(address, pattern, matches):
    assert endpoint_matches(address, pattern) is matches


def test_the_registry_applies_the_rules_to_trusted_specs_too_except_the_module_list():
    registry = EnvRegistry(admission=Admission.from_config(EnvServiceConfig(allowed_python_modules=[])))
    with pytest.raises(SpecError) as info:
        registry.register(builtin_spec("math"))
    assert "not in allowed_python_modules (none)" in dict(info.value.problems)["python.entry_point"]
    registry.register(builtin_spec("math"), trusted=True)  # the service's own config: no allow-list entry needed
    greedy = builtin_spec("code")
    greedy.sandbox.wall_time_s = 301
    with pytest.raises(SpecError) as info:
        registry.register(greedy, trusted=True)
    assert dict(info.value.problems) == {"sandbox.wall_time_s": "301 is above the service's maximum of 300 (max_sandbox_limits.wall_time_s)"}
    with pytest.raises(SpecError) as info:
        registry.register(env_pb2.EnvSpec(name="far", remote=env_pb2.RemoteEndpoint(address="unix:9")), trusted=True)
    assert "gRPC target schemes" in dict(info.value.problems)["remote.address"]


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        ({"allowed_python_modules": ["my envs"]}, "allowed_python_modules", "dotted module name"),
        ({"allowed_remote_endpoints": ["unix:/run/x.sock"]}, "allowed_remote_endpoints", "host:port"),
        ({"allowed_remote_endpoints": ["*"]}, "allowed_remote_endpoints", "host:port"),
        ({"max_sandbox_limits": {"max_processes": 5000}}, "max_sandbox_limits.max_processes", "4096"),
        ({"entry_point_import_timeout_s": 0}, "entry_point_import_timeout_s", "greater than 0"),
        ({"sandbox": {"limits": {"wall_time_s": 20}}, "max_sandbox_limits": {"wall_time_s": 10}}, "<root>",
         "sandbox.limits.wall_time_s (20.0) exceeds max_sandbox_limits.wall_time_s (10.0)"),
    ],
)
def test_admission_config_fields_fail_with_the_field_path(data, path, fragment):
    with pytest.raises(ConfigError) as info:
        parse_config({"kind": "env", **data})
    problems = dict(info.value.problems)
    assert path in problems and fragment in problems[path], problems


def test_a_partial_maxima_override_keeps_the_other_maxima():
    cfg = EnvServiceConfig(max_sandbox_limits={"memory_bytes": 2**34})
    assert (cfg.max_sandbox_limits.memory_bytes, cfg.max_sandbox_limits.wall_time_s) == (2**34, 300.0)

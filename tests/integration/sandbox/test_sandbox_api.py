"""The sandbox API on real backends: results, files and commands, async runs, backend choice."""

from __future__ import annotations

import asyncio
import logging

import pytest

from outrider.envs.sandbox import Limits, LimitHit, SandboxOptions, make_sandbox
from outrider.proto.v1 import common_pb2

pytestmark = pytest.mark.sandbox

LIMITS = Limits(wall_time_s=5, cpu_time_s=5, memory_bytes=256 * 1024 * 1024, max_processes=16)


def test_result_reports_stdout_stderr_exit_code_and_duration(sandbox):
    result = sandbox.run("import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)\n", LIMITS)
    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 3)
    assert result.limit_hit is LimitHit.NONE and not result.ok
    assert 0 < result.duration_s < LIMITS.wall_time_s
    assert result.backend == sandbox.name
    proto = result.to_proto()
    assert isinstance(proto, common_pb2.SandboxResult)
    assert (proto.exit_code, proto.stdout, proto.limit_hit, proto.backend) == (3, "out\n", common_pb2.SANDBOX_LIMIT_NONE, sandbox.name)


def test_files_and_a_command(sandbox):
    files = {"main.py": "from lib.helper import double\nprint(double(open('data/n.txt').read()))\n",
             "lib/__init__.py": "", "lib/helper.py": "def double(x):\n    return 2 * int(x)\n", "data/n.txt": "21"}
    result = sandbox.run(files, LIMITS)
    assert result.ok and result.stdout == "42\n"
    shell = sandbox.run({"a.txt": "hello"}, LIMITS, command=["/bin/sh", "-c", "cat a.txt; echo; pwd"])
    assert shell.stdout == "hello\n/work\n"


def test_proto_limits_override_only_their_non_zero_fields(sandbox):
    result = sandbox.run("import time\ntime.sleep(30)\n", common_pb2.SandboxLimits(wall_time_s=1.0))
    assert result.limit_hit is LimitHit.WALL_TIME
    assert 1.0 <= result.duration_s < 3.0


async def test_arun_runs_concurrently(sandbox):
    code = "import time\ntime.sleep(1.0)\nprint('done')\n"
    start = asyncio.get_running_loop().time()
    results = await asyncio.gather(*(sandbox.arun(code, LIMITS) for _ in range(4)))
    elapsed = asyncio.get_running_loop().time() - start
    assert [r.stdout for r in results] == ["done\n"] * 4
    # Four 1 s sleeps one after another would take >= 4 s.
    assert elapsed < 3.5


def test_auto_picks_an_isolating_backend(sandbox_options):
    sandbox = make_sandbox("auto", sandbox_options)
    assert sandbox.name in ("bwrap", "gvisor") and sandbox.isolated


def test_subprocess_backend_runs_with_limits_and_warns(sandbox_options, caplog):
    with caplog.at_level(logging.WARNING):
        sandbox = make_sandbox("subprocess", sandbox_options)
    assert "NO isolation" in caplog.text
    assert not sandbox.isolated
    result = sandbox.run("import resource\nprint(resource.getrlimit(resource.RLIMIT_AS)[0])\n", LIMITS)
    assert result.stdout == f"{LIMITS.memory_bytes}\n"
    stopped = sandbox.run("import time\ntime.sleep(30)\n", Limits(wall_time_s=1.0))
    assert stopped.limit_hit is LimitHit.WALL_TIME


def test_options_from_config_are_used(sandbox_options):
    from outrider.config.env import SandboxConfig

    cfg = SandboxConfig(workspace_root=str(sandbox_options.workspace_root), uid_base=sandbox_options.uid_base, tmp_bytes=2 * 1024 * 1024)
    options = SandboxOptions.from_config(cfg)
    sandbox = make_sandbox("bwrap", options)
    result = sandbox.run("import os\ns = os.statvfs('/tmp')\nprint(s.f_blocks * s.f_frsize)\n", LIMITS)
    assert result.stdout == f"{2 * 1024 * 1024}\n"

"""Protobuf fuzzing of the env service process with the built-in environments: every RPC,
generated and byte-level requests (tests/testkit/fuzz.py; counts in docs/security.md, "Fuzz tests").

Methods run in the order of SHARES: RegisterEnv (which may replace a built-in, `replace: true`)
and UnregisterEnv (which may remove one) come last, so that the session and step cases before
them meet the built-ins as configured."""

from __future__ import annotations

import random
import shutil
import uuid
from pathlib import Path

import pytest
from hypothesis import strategies as st

from outrider.config import EnvServiceConfig
from outrider.config.names import BUILTIN_ENV_NAMES
from outrider.envs.sandbox import SandboxOptions, SandboxUnavailable, make_sandbox
from outrider.proto.v1 import env_pb2, env_pb2_grpc
from testkit.fuzz import ServiceUnderFuzz, fuzz_cases, fuzz_method
from testkit.proto_strategies import strings

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]

SERVICE = env_pb2.DESCRIPTOR.services_by_name["EnvService"]
SHARES = {
    "ListEnvs": 0.05, "ListTasks": 0.15, "CreateSession": 0.2, "Step": 0.2, "CloseSession": 0.1,
    "RunAgent": 0.05, "RegisterEnv": 0.15, "UnregisterEnv": 0.1,
}
"""Fraction of the service's cases per method, in the order they run."""

SESSIONS_PER_ENV = 6
ENTRY_POINTS = [
    "outrider.envs.builtin.math_env:MathEnv",  # allowed and already imported: registers
    "outrider.envs.builtin.math_env:NoSuchEnv",
    "outrider.envs.builtin.math_env",
    "outrider.envs.builtin.no_such_module:Env",  # allowed: imported in a child process, fails there
    "os:system",
    ":",
]


def text_actions() -> st.SearchStrategy[str]:
    """Replies the built-in environments understand (an answer, code, a tool call), or any text."""
    return st.one_of(st.sampled_from(["Answer: 3", "\\boxed{7}", "```python\nprint(1)\n```", "<tool_call>{\"name\": \"python\", \"arguments\": {\"code\": \"print(2)\"}}</tool_call>", "50"]), strings(64))


@pytest.fixture(scope="module")
def env_service(tmp_path_factory):
    """The env service with every built-in environment, a sandbox of its own, and sessions to step."""
    folder = tmp_path_factory.mktemp("fuzz-env")
    workspace = Path("/tmp") / f"outrider-fuzz-env-{uuid.uuid4().hex[:8]}"
    uid_base = random.randrange(2_000_000, 2_000_000_000, 65536)
    try:
        make_sandbox("auto", SandboxOptions(workspace_root=workspace, uid_base=uid_base)).close()
    except SandboxUnavailable as exc:
        pytest.skip(f"no sandbox backend on this host (the code and python-tool environments need one): {exc}")
    cfg = EnvServiceConfig.model_validate({
        "server": {"metrics_port": None, "grace_s": 1},
        "builtin_envs": list(BUILTIN_ENV_NAMES),
        "sandbox": {"workspace_root": str(workspace), "uid_base": uid_base, "limits": {"wall_time_s": 5, "cpu_time_s": 2}},
        "max_sessions": 256,
        "entry_point_import_timeout_s": 20,
    })
    target = ServiceUnderFuzz.start("env", cfg, folder)
    stub = env_pb2_grpc.EnvServiceStub(target.channel)
    task_ids, sessions = [], []
    for env in BUILTIN_ENV_NAMES:
        tasks = stub.ListTasks(env_pb2.ListTasksRequest(env=env, limit=SESSIONS_PER_ENV), timeout=60).tasks
        task_ids += [t.id for t in tasks]
        for task in tasks:
            sessions.append(stub.CreateSession(env_pb2.CreateSessionRequest(env=env, task_id=task.id), timeout=60).session_id)
    target.set_baseline()
    overrides = {
        "outrider.v1.ListTasksRequest.env": st.one_of(st.sampled_from(BUILTIN_ENV_NAMES), strings(16)),
        "outrider.v1.ListTasksRequest.split": st.one_of(st.sampled_from(["train", "test", ""]), strings(16)),
        "outrider.v1.CreateSessionRequest.env": st.one_of(st.sampled_from(BUILTIN_ENV_NAMES), strings(16)),
        "outrider.v1.CreateSessionRequest.task_id": st.one_of(st.sampled_from(task_ids), strings(16)),
        "outrider.v1.StepRequest.session_id": st.one_of(st.sampled_from(sessions), strings(16)),
        "outrider.v1.CloseSessionRequest.session_id": st.one_of(st.sampled_from(sessions), strings(16)),
        "outrider.v1.RunAgentRequest.env": st.one_of(st.sampled_from(BUILTIN_ENV_NAMES), strings(16)),
        "outrider.v1.Action.text": text_actions(),
        "outrider.v1.EnvSpec.name": st.one_of(st.sampled_from([*BUILTIN_ENV_NAMES, "fuzzed"]), strings(16)),
        "outrider.v1.PythonEntryPoint.entry_point": st.one_of(st.sampled_from(ENTRY_POINTS), strings(32)),
        "outrider.v1.UnregisterEnvRequest.name": st.one_of(st.sampled_from([*BUILTIN_ENV_NAMES, "fuzzed"]), strings(16)),
    }
    mib = 2**20
    plausible = {
        "outrider.v1.StepRequest.session_id": st.sampled_from(sessions),
        "outrider.v1.CloseSessionRequest.session_id": st.sampled_from(sessions),
        "outrider.v1.CreateSessionRequest.env": st.sampled_from(BUILTIN_ENV_NAMES),
        "outrider.v1.CreateSessionRequest.task_id": st.sampled_from(task_ids),
        "outrider.v1.ListTasksRequest.env": st.sampled_from(BUILTIN_ENV_NAMES),
        "outrider.v1.ListTasksRequest.limit": st.integers(0, 50),
        "outrider.v1.EnvSpec.name": st.sampled_from(["fuzzed", "fuzzed-b", "math"]),
        "outrider.v1.EnvSpec.version": st.sampled_from(["", "1.0.0", "2"]),
        "outrider.v1.PythonEntryPoint.entry_point": st.just("outrider.envs.builtin.math_env:MathEnv"),
        "outrider.v1.RemoteEndpoint.address": st.sampled_from(["127.0.0.1:1", "localhost:9", "[::1]:2"]),
        "outrider.v1.RemoteEndpoint.timeout_s": st.floats(0.1, 5),
        "outrider.v1.SandboxLimits.wall_time_s": st.floats(0.1, 10),
        "outrider.v1.SandboxLimits.cpu_time_s": st.floats(0.1, 10),
        "outrider.v1.SandboxLimits.memory_bytes": st.integers(16 * mib, 1024 * mib),
        "outrider.v1.SandboxLimits.max_processes": st.integers(1, 32),
        "outrider.v1.SandboxLimits.max_output_bytes": st.integers(1024, mib),
        "outrider.v1.SandboxLimits.max_file_bytes": st.integers(1024, mib),
        "outrider.v1.EnvSpec.max_turns": st.integers(1, 8),
        "outrider.v1.UnregisterEnvRequest.name": st.sampled_from(["fuzzed", "fuzzed-b"]),
        "outrider.v1.EnvSpec.description": st.text(max_size=32),
        "outrider.v1.EnvSpec.tools[]": st.just([]),  # the math environment has no tools
        "outrider.v1.RewardSpec.verifiers[]": st.just([]),
        "outrider.v1.EnvSpec.ParamsEntry.key": st.sampled_from(["difficulty", "num_train", "seed", "nope"]),
        "outrider.v1.EnvSpec.ParamsEntry.value": st.one_of(st.sampled_from(["0", "1", "3", "-1", "1e9", "nan", "x"]), strings(8)),
    }
    yield target, overrides, plausible
    code = target.stop()
    shutil.rmtree(workspace, ignore_errors=True)
    print(f"env: statuses {dict(target.codes)}; first details {target.first_details}; RSS {target.baseline_rss / 2**20:.0f} -> peak {target.peak_rss / 2**20:.0f} MiB")
    assert code == 0, f"the env service did not stop cleanly (exit {code}); log tail:\n{target.log_tail()}"


def test_every_rpc_is_fuzzed():
    assert set(SHARES) == {m.name for m in SERVICE.methods} and sum(SHARES.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("method", list(SHARES))
def test_fuzz_env(env_service, method):
    target, overrides, plausible = env_service
    cases = max(1, round(fuzz_cases() * SHARES[method]))
    sent = fuzz_method(target, SERVICE.methods_by_name[method], cases, overrides, plausible)
    print(f"env {method}: {sent}")
    assert sent["generated"] + sent["bytes"] >= cases

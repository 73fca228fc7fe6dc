"""Protobuf fuzzing of the curriculum service process (with Redis): every RPC, generated and
byte-level requests (tests/testkit/fuzz.py; counts in docs/security.md, "Fuzz tests")."""

from __future__ import annotations

import json
import uuid

import pytest
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import strategies as st

from outrider.config import CurriculumServiceConfig
from outrider.proto.v1 import curriculum_pb2
from testkit.fuzz import ServiceUnderFuzz, fuzz_cases, fuzz_method
from testkit.proto_strategies import floats, integers, strings

pytestmark = pytest.mark.slow

SERVICE = curriculum_pb2.DESCRIPTOR.services_by_name["CurriculumService"]
SHARES = {"NextTasks": 0.35, "ReportOutcomes": 0.5, "GetState": 0.15}
"""Fraction of the service's cases per method; ReportOutcomes changes state, so it gets most."""

ENVS = ["math", "code"]
TASK_IDS = [f"q{i:02d}" for i in range(10)] + ["held-out"]
OVERRIDES = {
    # Known environments and task ids (and the held-out one) get past the lookups.
    "outrider.v1.TaskOutcome.env": st.one_of(st.sampled_from(ENVS), strings(16)),
    "outrider.v1.TaskOutcome.task_id": st.one_of(st.sampled_from(TASK_IDS), strings(16)),
    "outrider.v1.TaskOutcome.rewards": st.one_of(st.sampled_from([0.0, 1.0, 0.5]), floats(64)),
    "outrider.v1.NextTasksRequest.env": st.one_of(st.sampled_from(["", *ENVS]), strings(16)),
    "outrider.v1.NextTasksRequest.n": st.one_of(st.integers(0, 70), integers(FieldDescriptor.TYPE_UINT32)),
}
PLAUSIBLE = {
    "outrider.v1.TaskOutcome.env": st.sampled_from(ENVS),
    "outrider.v1.TaskOutcome.task_id": st.sampled_from(TASK_IDS[:-1]),
    "outrider.v1.TaskOutcome.rewards": st.floats(0, 1),
    "outrider.v1.NextTasksRequest.env": st.sampled_from(["", *ENVS]),
    "outrider.v1.NextTasksRequest.n": st.integers(1, 64),
}
"""Valid values: half the generated requests use them, to reach sampling and recording."""


def write_dataset(path, env: str) -> str:
    rows = [{"id": f"q{i:02d}", "prompt": f"{env} task {i}", "difficulty": i % 3, "reference": str(i)} for i in range(10)]
    rows.append({"id": "held-out", "prompt": "x", "split": "test"})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def curriculum(tmp_path_factory, any_redis_url):
    """The curriculum service over two dataset pools of 10 tasks each, exclusion on."""
    folder = tmp_path_factory.mktemp("fuzz-curriculum")
    cfg = CurriculumServiceConfig.model_validate({
        "server": {"metrics_port": None, "grace_s": 1},
        "redis": {"url": any_redis_url},
        "key_prefix": f"fuzz-{uuid.uuid4().hex[:12]}",
        "pools": [{"type": "dataset", "env": env, "path": write_dataset(folder / f"{env}.jsonl", env)} for env in ENVS],
        "exclusion": {"enabled": True},
        "max_tasks_per_call": 64,
        "seed": 1,
    })
    target = ServiceUnderFuzz.start("curriculum", cfg, folder)
    target.set_baseline()
    yield target
    code = target.stop()
    print(f"curriculum: statuses {dict(target.codes)}; first details {target.first_details}; RSS {target.baseline_rss / 2**20:.0f} -> peak {target.peak_rss / 2**20:.0f} MiB")
    assert code == 0, f"the curriculum service did not stop cleanly (exit {code}); log tail:\n{target.log_tail()}"


def test_every_rpc_is_fuzzed():
    assert set(SHARES) == {m.name for m in SERVICE.methods} and sum(SHARES.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("method", list(SHARES))
def test_fuzz_curriculum(curriculum, method):
    cases = max(1, round(fuzz_cases() * SHARES[method]))
    sent = fuzz_method(curriculum, SERVICE.methods_by_name[method], cases, OVERRIDES, PLAUSIBLE)
    print(f"curriculum {method}: {sent}")
    assert sent["generated"] + sent["bytes"] >= cases

"""Protobuf fuzzing of the reward service process: every RPC, generated and byte-level requests
(tests/testkit/fuzz.py; counts in docs/security.md, "Fuzz tests")."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st

from outrider.config import RewardServiceConfig
from outrider.proto.v1 import reward_pb2
from testkit.fuzz import ServiceUnderFuzz, fuzz_cases, fuzz_method
from testkit.proto_strategies import strings

pytestmark = pytest.mark.slow

SERVICE = reward_pb2.DESCRIPTOR.services_by_name["RewardService"]
SHARES = {"Score": 0.45, "ScoreSteps": 0.45, "GetInfo": 0.10}
"""Fraction of the service's cases per method (GetInfo's request has no fields)."""

VERIFIER_NAMES = st.one_of(st.sampled_from(["math", "format", "length", "code", "*"]), strings(16))
OVERRIDES = {
    # Known names get past the lookup; arbitrary ones must be refused by name.
    "outrider.v1.ScoreRequest.verifiers": VERIFIER_NAMES,
    "outrider.v1.ScoreItem.env": st.one_of(st.sampled_from(["math", "code", "other"]), strings(16)),
    "outrider.v1.StepsItem.env": st.one_of(st.sampled_from(["math", "other"]), strings(16)),
}


@pytest.fixture(scope="module")
def reward(tmp_path_factory):
    """The reward service with math/format/length verifiers for `math`, a code verifier for `code`,
    and the lm-judge PRM on tiny-random (so ScoreSteps runs a model)."""
    folder = tmp_path_factory.mktemp("fuzz-reward")
    cfg = RewardServiceConfig.model_validate({
        "server": {"metrics_port": None, "grace_s": 1},
        "verifiers": {
            "*": [{"type": "math"}, {"type": "format", "pattern": r"\d+", "require_answer": "any"}, {"type": "length", "max_length": 64, "buffer": 8, "unit": "chars"}],
            "code": [{"type": "code", "timeout_s": 20, "sandbox": {"limits": {"wall_time_s": 5, "cpu_time_s": 2}}}],
        },
        "prm": {"type": "lm-judge", "model": "tiny-random", "device": "cpu", "batch_size": 8},
        "limits": {"max_batch_items": 8, "max_trajectory_tokens": 512, "max_steps": 16},
    })
    target = ServiceUnderFuzz.start("reward", cfg, folder)
    target.set_baseline()
    yield target
    code = target.stop()
    print(f"reward: statuses {dict(target.codes)}; first details {target.first_details}; RSS {target.baseline_rss / 2**20:.0f} -> peak {target.peak_rss / 2**20:.0f} MiB")
    assert code == 0, f"the reward service did not stop cleanly (exit {code}); log tail:\n{target.log_tail()}"


@pytest.mark.parametrize("method", list(SHARES))
def test_fuzz_reward(reward, method):
    cases = max(1, round(fuzz_cases() * SHARES[method]))
    sent = fuzz_method(reward, SERVICE.methods_by_name[method], cases, OVERRIDES)
    print(f"reward {method}: {sent}")
    assert sent["generated"] + sent["bytes"] >= cases


def test_every_rpc_is_fuzzed():
    assert set(SHARES) == {m.name for m in SERVICE.methods} and sum(SHARES.values()) == pytest.approx(1.0)

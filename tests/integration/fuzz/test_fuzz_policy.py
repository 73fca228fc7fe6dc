"""Protobuf fuzzing of the policy service process on the HF backend with tiny-random: every RPC,
generated and byte-level requests (tests/testkit/fuzz.py; counts in docs/security.md, "Fuzz tests").

The service's own limits bound a case's work (at most 3 prompts x 2 completions x 8 new tokens,
256 tokens of context), so the strategies may ask for anything: larger asks must be refused.
UpdateWeights runs last: a header with a newer version and a source that loads would change
the served weights (none of the generated sources names a loadable checkpoint)."""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import strategies as st

from outrider.config import PolicyServiceConfig
from outrider.proto.v1 import policy_pb2, policy_pb2_grpc
from testkit.fuzz import ServiceUnderFuzz, fuzz_cases, fuzz_method
from testkit.proto_strategies import floats, integers, mostly, strings

pytestmark = pytest.mark.slow

SERVICE = policy_pb2.DESCRIPTOR.services_by_name["PolicyService"]
SHARES = {
    "GetInfo": 0.04, "Tokenize": 0.12, "Detokenize": 0.12, "ApplyChatTemplate": 0.12,
    "ScoreTokens": 0.14, "Generate": 0.16, "GenerateStream": 0.12, "UpdateWeights": 0.18,
}
"""Fraction of the service's cases per method, in the order they run."""

INT32 = FieldDescriptor.TYPE_INT32
UINT32 = FieldDescriptor.TYPE_UINT32
UINT64 = FieldDescriptor.TYPE_UINT64


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-policy")
    cfg = PolicyServiceConfig.model_validate({
        "model": "tiny-random", "backend": "hf", "dtype": "float32", "device": "cpu",
        "limits": {"max_context": 256, "max_tokens": 8, "default_max_tokens": 4, "max_n": 2, "max_prompts": 3},
        "server": {"metrics_port": None, "grace_s": 1},
        "http_port": None,
        "max_version_jump": 10,
    })
    target = ServiceUnderFuzz.start("policy", cfg, folder)
    info = policy_pb2_grpc.PolicyServiceStub(target.channel).GetInfo(policy_pb2.GetInfoRequest(), timeout=60)
    vocab = info.vocab_size
    target.set_baseline()
    token_ids = mostly(st.integers(0, vocab - 1), st.one_of(st.sampled_from([vocab, -1]), integers(INT32)))
    overrides = {
        "outrider.v1.TokenIds.ids": token_ids,
        "outrider.v1.ScoreSequence.token_ids": token_ids,
        "outrider.v1.ScoreSequence.prompt_length": mostly(st.integers(1, 4), integers(UINT32)),
        "outrider.v1.SamplingParams.stop_token_ids": token_ids,
        "outrider.v1.SamplingParams.n": mostly(st.integers(1, 3), integers(UINT32)),
        "outrider.v1.SamplingParams.max_tokens": mostly(st.integers(1, 9), integers(UINT32)),
        "outrider.v1.SamplingParams.temperature": mostly(st.floats(0, 2), floats(32)),
        "outrider.v1.SamplingParams.top_p": mostly(st.floats(0.01, 1), floats(32)),
        "outrider.v1.SamplingParams.top_k": mostly(st.integers(-1, 50), integers(INT32)),
        "outrider.v1.ChatMessage.role": mostly(["user", "assistant", "system"], strings(16)),
        "outrider.v1.GenerateRequest.model": mostly(["", "tiny-random"], strings(16)),
        "outrider.v1.WeightsHeader.version": mostly(st.integers(0, 12), integers(UINT64)),
        "outrider.v1.WeightsHeader.checkpoint_path": st.one_of(st.sampled_from(["/nonexistent", "/etc/passwd", "/tmp", str(folder), "."]), strings(32)),
        "outrider.v1.WeightsHeader.staged_file": st.one_of(st.sampled_from(["/nonexistent", "/etc/passwd", "/dev/zero", "/tmp", str(folder / "policy.yaml")]), strings(32)),
        "outrider.v1.TensorChunk.name": st.one_of(st.sampled_from(["model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"]), strings(32)),
        "outrider.v1.TensorChunk.dtype": st.one_of(st.sampled_from(["float32", "bfloat16", "float16", "int8", "F32"]), strings(8)),
    }
    vocab_ids = st.integers(0, vocab - 1)
    short_text = st.text(st.characters(codec="utf-8"), max_size=48)
    plausible = {
        "outrider.v1.TokenIds.ids": vocab_ids,
        "outrider.v1.ScoreSequence.token_ids": vocab_ids,
        "outrider.v1.ScoreSequence.prompt_length": st.integers(1, 2),
        "outrider.v1.SamplingParams.stop_token_ids": vocab_ids,
        "outrider.v1.SamplingParams.stop": st.text(st.characters(codec="utf-8"), min_size=1, max_size=8),
        "outrider.v1.SamplingParams.n": st.integers(1, 2),
        "outrider.v1.SamplingParams.max_tokens": st.integers(1, 8),
        "outrider.v1.SamplingParams.temperature": st.floats(0, 2),
        "outrider.v1.SamplingParams.top_p": st.floats(0.01, 1),
        "outrider.v1.SamplingParams.top_k": st.integers(-1, 50),
        "outrider.v1.ChatMessage.role": st.sampled_from(["user", "assistant", "system"]),
        "outrider.v1.ChatMessage.content": short_text,
        "outrider.v1.Prompt.text": short_text,
        "outrider.v1.GenerateRequest.model": st.just(""),
        "outrider.v1.TokenizeRequest.texts": short_text,
    }
    yield target, overrides, plausible
    code = target.stop()
    print(f"policy: statuses {dict(target.codes)}; first details {target.first_details}; RSS {target.baseline_rss / 2**20:.0f} -> peak {target.peak_rss / 2**20:.0f} MiB")
    assert code == 0, f"the policy service did not stop cleanly (exit {code}); log tail:\n{target.log_tail()}"


def test_every_rpc_is_fuzzed():
    assert set(SHARES) == {m.name for m in SERVICE.methods} and sum(SHARES.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("method", list(SHARES))
def test_fuzz_policy(policy, method):
    target, overrides, plausible = policy
    cases = max(1, round(fuzz_cases() * SHARES[method]))
    sent = fuzz_method(target, SERVICE.methods_by_name[method], cases, overrides, plausible)
    print(f"policy {method}: {sent}")
    assert sent["generated"] + sent["bytes"] >= cases

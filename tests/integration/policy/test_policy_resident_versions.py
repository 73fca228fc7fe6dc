"""Several weights versions served at once (policy.max_resident_versions): Generate pinned to
an earlier version samples with exactly that version's weights and says so; a version that is
not resident is NOT_FOUND naming the resident ones; the oldest copy goes first."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from outrider.clients.policy import PolicyClient
from outrider.models import resolve_model
from testkit.policy import PolicyServerThread, hf_logprobs, max_abs_diff, perturbed_checkpoint, policy_config

PROMPTS = [[1, 4093, 198, 6004, 2, 198, 1, 520, 9531, 198], [6403, 1980, 253, 655]]
LOGPROB_TOL = 1e-4


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Three distinct perturbations of tiny-random: the weights of versions 1, 2 and 3."""
    root = tmp_path_factory.mktemp("versions")
    source = resolve_model("tiny-random")
    folders = {}
    for version in (1, 2, 3):
        folders[version] = root / f"v{version}"
        perturbed_checkpoint(source, folders[version], scale=0.05, seed=version)
    folders[0] = source
    return folders


def sampled(reply) -> list[tuple[list[int], int]]:
    return [(list(r.prompt_ids) + list(r.completions[0].token_ids), len(r.prompt_ids)) for r in reply.results]


def test_generate_pinned_to_each_resident_version_uses_its_weights(checkpoints, record_property):
    with PolicyServerThread(policy_config("hf", max_resident_versions=3)) as server, PolicyClient(server.address, timeout_s=300) as client:
        assert list(client.info().resident_versions) == [0]
        for version in (1, 2, 3):
            client.update_weights_from_path(version, checkpoints[version])
        # Three resident: 3 is served, 2 and 1 are kept; 0 was dropped (oldest first).
        assert list(client.info().resident_versions) == [3, 2, 1]
        for version in (1, 2, 3):
            reply = client.generate(PROMPTS, temperature=0.0, max_tokens=12, ignore_eos=True, policy_version=version)
            assert reply.policy_version == version
            # The log-probs are those of that version's weights (a plain HF forward pass on them).
            diff = max_abs_diff([list(r.completions[0].logprobs) for r in reply.results], hf_logprobs(checkpoints[version], sampled(reply)))
            record_property(f"pinned_v{version}_vs_hf", diff)
            assert diff <= LOGPROB_TOL
        latest = client.generate(PROMPTS, temperature=0.0, max_tokens=12, ignore_eos=True)
        assert latest.policy_version == 3
        assert sampled(latest) == sampled(client.generate(PROMPTS, temperature=0.0, max_tokens=12, ignore_eos=True, policy_version=3))
        assert sampled(latest) != sampled(client.generate(PROMPTS, temperature=0.0, max_tokens=12, ignore_eos=True, policy_version=1))

        # Pinned and latest calls at once: rows of different weights never share a batch,
        # so each gives what it gives alone (greedy).
        alone = {v: sampled(client.generate(PROMPTS, temperature=0.0, max_tokens=12, ignore_eos=True, policy_version=v)) for v in (1, 3)}
        with ThreadPoolExecutor(4) as pool:
            calls = [(v, pool.submit(client.generate, PROMPTS, temperature=0.0, max_tokens=12, ignore_eos=True, policy_version=v))
                     for v in (1, 3, 1, 3)]
            for v, call in calls:
                assert call.result().policy_version == v and sampled(call.result()) == alone[v]

        chunks = list(client.generate_stream(PROMPTS[:1], temperature=0.0, max_tokens=4, ignore_eos=True, policy_version=2))
        assert chunks and {c.policy_version for c in chunks} == {2}

        with pytest.raises(grpc.RpcError) as error:
            client.generate(PROMPTS, max_tokens=2, policy_version=0)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        assert "version 0 is not resident; resident versions: 3 (served), 2, 1 (policy.max_resident_versions = 3)" in error.value.details()
        with pytest.raises(grpc.RpcError) as error:
            client.generate(PROMPTS, max_tokens=2, policy_version=4)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND

        # A fourth update drops version 1, the oldest kept.
        client.update_weights_from_path(4, checkpoints[0])
        assert list(client.info().resident_versions) == [4, 3, 2]
        with pytest.raises(grpc.RpcError) as error:
            client.generate(PROMPTS, max_tokens=2, policy_version=1)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        kept = server.call(_kept_models(server))
        assert kept == [2, 3]


async def _kept_models(server):
    return sorted(server.server.core.backend.snapshots)


def test_one_resident_version_by_default(checkpoints):
    with PolicyServerThread(policy_config("hf")) as server, PolicyClient(server.address, timeout_s=300) as client:
        client.update_weights_from_path(1, checkpoints[1])
        assert list(client.info().resident_versions) == [1]
        assert client.generate(PROMPTS, max_tokens=2, policy_version=1).policy_version == 1
        with pytest.raises(grpc.RpcError) as error:
            client.generate(PROMPTS, max_tokens=2, policy_version=0)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        assert "resident versions: 1 (served) (policy.max_resident_versions = 1)" in error.value.details()
        assert server.server.core.backend.snapshots == {}

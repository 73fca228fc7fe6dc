"""UpdateWeights versions are bounded above as well as below, over real gRPC (HF backend on
tiny-random): a version more than `max_version_jump` above the served one is refused before any
weight is read, so 2^64-1 cannot lock the learner out; a step of exactly the bound is accepted."""

from __future__ import annotations

import grpc
import pytest

from outrider.clients.policy import PolicyClient
from outrider.config import PolicyServiceConfig
from outrider.models import resolve_model
from testkit.policy import PolicyServerThread, policy_config

JUMP = 10


@pytest.fixture(scope="module")
def client():
    with PolicyServerThread(policy_config("hf", max_version_jump=JUMP)) as running:
        with PolicyClient(running.address, timeout_s=300) as policy:
            yield policy


def refused(call, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.RpcError) as failure:
        call()
    assert failure.value.code() == code, failure.value.details()
    return failure.value.details()


def test_the_default_bound():
    assert PolicyServiceConfig().max_version_jump == 1_000_000


def test_versions_too_far_ahead_are_refused_and_the_bound_itself_is_accepted(client):
    checkpoint = resolve_model("tiny-random")
    assert client.info().policy_version == 0
    top = 2**64 - 1  # the largest uint64: after it no version would ever be newer
    details = refused(lambda: client.update_weights_from_path(top, checkpoint), grpc.StatusCode.INVALID_ARGUMENT)
    assert details == (
        f"header.version: {top} is {top} above the served version 0; "
        f"an update may raise it by at most max_version_jump ({JUMP})"
    )
    details = refused(lambda: client.update_weights_from_path(JUMP + 1, checkpoint), grpc.StatusCode.INVALID_ARGUMENT)
    assert "header.version: 11 is 11 above the served version 0" in details
    assert client.info().policy_version == 0

    reply = client.update_weights_from_path(JUMP, checkpoint)  # 10 - 0 = 10: exactly the bound
    assert (reply.previous_version, reply.version) == (0, JUMP)
    refused(lambda: client.update_weights_from_path(2 * JUMP + 1, checkpoint), grpc.StatusCode.INVALID_ARGUMENT)
    refused(lambda: client.update_weights_from_path(JUMP, checkpoint), grpc.StatusCode.FAILED_PRECONDITION)  # not newer
    assert client.update_weights_from_path(JUMP + 1, checkpoint).version == JUMP + 1  # the learner goes on
    assert client.info().policy_version == JUMP + 1

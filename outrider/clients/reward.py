"""RewardClient: a small synchronous, typed client of the reward service.

    with RewardClient("127.0.0.1:50053") as rewards:
        result = rewards.score([ScoreItem(id="a", env="math", response="Answer: 42", reference="42")])[0]
        result.reward if result.HasField("reward") else result.status      # absent when a verifier failed
        steps = rewards.score_steps([StepsItem(id="t", conversation=[...])])[0]
        list(steps.scores), list(steps.rewards)

Failures of the whole call raise `grpc.RpcError` with the status and message.
"""

from __future__ import annotations

from collections.abc import Sequence

from outrider.proto.v1 import common_pb2, reward_pb2, reward_pb2_grpc
from outrider.serving.credentials import ClientCredentials, open_channel

ScoreItem = reward_pb2.ScoreItem
StepsItem = reward_pb2.StepsItem
ChatMessage = common_pb2.ChatMessage


class RewardClient:
    def __init__(self, address: str, timeout_s: float = 120.0, max_message_bytes: int = 64 * 1024 * 1024,
                 credentials: ClientCredentials | None = None):
        self.address = address
        self.timeout_s = timeout_s
        options = [("grpc.max_send_message_length", max_message_bytes), ("grpc.max_receive_message_length", max_message_bytes)]
        self._channel = open_channel(address, options, credentials)
        self._stub = reward_pb2_grpc.RewardServiceStub(self._channel)

    def score(self, items: Sequence[reward_pb2.ScoreItem], verifiers: Sequence[str] = ()) -> list[reward_pb2.ScoreResult]:
        """Outcome rewards, one result per item in order."""
        request = reward_pb2.ScoreRequest(items=list(items), verifiers=list(verifiers))
        return list(self._stub.Score(request, timeout=self.timeout_s).results)

    def score_steps(self, items: Sequence[reward_pb2.StepsItem]) -> list[reward_pb2.StepScores]:
        """Process rewards: per-step scores s_t and shaped rewards r_t, one result per item."""
        request = reward_pb2.ScoreStepsRequest(items=list(items))
        return list(self._stub.ScoreSteps(request, timeout=self.timeout_s).results)

    def info(self) -> reward_pb2.RewardInfo:
        return self._stub.GetInfo(reward_pb2.RewardInfoRequest(), timeout=self.timeout_s)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> RewardClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""Multi-objective rewards through the real reward service: weighted terms and a Lagrangian
constraint from Score over gRPC, through the rollout's assign_rewards into Trajectory
components, to the learner's penalty and λ update."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from pydantic import ValidationError

from outrider.clients.reward import RewardClient
from outrider.config import RewardServiceConfig, ServerConfig
from outrider.config.learner import ConstraintsConfig
from outrider.config.reward import ConstraintConfig, FormatVerifierConfig, LengthVerifierConfig, MathVerifierConfig
from outrider.config.rollout import RewardSourceConfig
from outrider.learner.batch import build_batch
from outrider.learner.objectives import ConstraintMultipliers, component_table
from outrider.proto.v1 import common_pb2, reward_pb2, reward_pb2_grpc, trajectory_pb2
from outrider.rollout.episodes import Episode, trajectory_of
from outrider.rollout.rewards import assign_rewards
from outrider.services.reward.server import create_server

# Length is a penalty in [−1, 0] (0 up to 80 tokens, −1 at 100): held to ≥ −0.2 instead of weighted.
LENGTH = LengthVerifierConfig(max_length=100, buffer=20, constraint=ConstraintConfig(threshold=-0.2, direction="at_least"))


@pytest.fixture
async def address():
    cfg = RewardServiceConfig(
        server=ServerConfig(metrics_port=None, grace_s=0),
        verifiers={"*": [MathVerifierConfig(weight=1.0), FormatVerifierConfig(weight=0.5, require_answer="boxed"), LENGTH]},
    )
    built = await create_server(cfg)
    await built.start()
    yield f"127.0.0.1:{built.port}"
    await built.stop(0)


def episode(index: int, answer: str, tokens: int) -> Episode:
    e = Episode(index=index, token_ids=list(range(1 + tokens)), logprobs=[0.0] * (1 + tokens), loss_mask=[False] + [True] * tokens, prompt_length=1)
    e.turns = [trajectory_pb2.Turn(start=1, completion_length=tokens, policy_version=3)]
    e.messages = [common_pb2.ChatMessage(role="user", content="2 + 2?"), common_pb2.ChatMessage(role="assistant", content=answer)]
    e.done = True
    return e


async def test_score_leaves_the_constraint_out_of_the_reward_and_reports_it(address):
    async with grpc.aio.insecure_channel(address) as channel:
        stub = reward_pb2_grpc.RewardServiceStub(channel)
        item = reward_pb2.ScoreItem(id="a", env="math", response="\\boxed{4}", reference="4", response_tokens=90)
        (result,) = (await stub.Score(reward_pb2.ScoreRequest(items=[item]))).results
    # math 1·1 + format 0.5·1 = 1.5; length (80 − 90)/20 = −0.5 is a constraint, not a term.
    assert result.reward == pytest.approx(1.5, abs=1e-12)
    math_c, format_c, length_c = result.components
    assert not math_c.HasField("constraint") and not format_c.HasField("constraint")
    assert length_c.value == pytest.approx(-0.5, abs=1e-12)
    assert (length_c.constraint.threshold, length_c.constraint.at_least) == (-0.2, True)


async def test_components_reach_the_learner_which_penalizes_and_moves_lambda(address):
    # A: right, boxed, 90 tokens (length −0.5: violation g = −0.2 − (−0.5) = 0.3).
    # B: wrong, boxed, 50 tokens (length 0: g = −0.2, the constraint holds).
    episodes = [episode(0, "\\boxed{4}", 90), episode(1, "\\boxed{5}", 50)]
    task = common_pb2.Task(id="t", env="math", reference="4", preview="2 + 2?")
    client = RewardClient(address)
    try:
        # The synchronous client off the event loop, which serves the reward service.
        await asyncio.to_thread(assign_rewards, task, episodes, RewardSourceConfig(outcome="reward-service"), client)
    finally:
        client.close()
    trajectories = [trajectory_of(e, f"g/{e.index}") for e in episodes]
    assert [t.outcome_reward for t in trajectories] == pytest.approx([1.5, 0.5], abs=1e-12)  # r_main
    assert [[(c.name, c.value) for c in t.reward_components] for t in trajectories] == [
        [("math", 1.0), ("format", 1.0), ("length", pytest.approx(-0.5, abs=1e-12))],
        [("math", 0.0), ("format", 1.0), ("length", 0.0)],
    ]
    # Across the bus: the group's serialized form keeps them.
    group = trajectory_pb2.TrajectoryGroup.FromString(trajectory_pb2.TrajectoryGroup(group_id="g", trajectories=trajectories).SerializeToString())
    multipliers = ConstraintMultipliers(ConstraintsConfig(lr=1.0, initial=2.0))
    batch = build_batch([group])
    rewards, metrics = multipliers.step(component_table([group]), batch.rewards, batch.valid)
    # R = r_main − λ·max(0, g) with λ = 2: A 1.5 − 0.6 = 0.9, B 0.5.
    assert rewards.tolist() == pytest.approx([0.9, 0.5], abs=1e-6)
    # λ ← 2 + 1·(0.3 − 0.2)/2 = 2.05; every component logged.
    assert multipliers.state_dict()["length"] == pytest.approx(2.05, abs=1e-12)
    assert metrics["reward/math"] == 0.5 and metrics["reward/format"] == 1.0
    assert metrics["reward/length"] == pytest.approx(-0.25, abs=1e-12)
    assert metrics["constraint/length/violation"] == pytest.approx(0.05, abs=1e-12)


def test_an_environment_of_only_constraints_is_refused_naming_it():
    with pytest.raises(ValidationError, match="'math': every verifier is a constraint"):
        RewardServiceConfig(verifiers={"math": [LENGTH]})

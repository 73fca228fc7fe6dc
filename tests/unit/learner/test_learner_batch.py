"""From trajectory groups to tensors, and cutting them into micro-batches."""

from __future__ import annotations


from outrider.learner.batch import build_batch, pack_micro_batches, plan_micro_batches, shard_rows
from outrider.proto.v1.trajectory_pb2 import StepReward, Trajectory, TrajectoryGroup, Turn


def _trajectory(ids, mask, logprobs, reward=0.0, steps=(), version=3):
    return Trajectory(
        token_ids=ids, loss_mask=mask, logprobs=logprobs, prompt_length=mask.index(True), outcome_reward=reward,
        step_rewards=[StepReward(token_index=i, score=s, reward=r) for i, s, r in steps],
        turns=[Turn(start=mask.index(True), completion_length=sum(mask), policy_version=version)],
    )


def test_tensors_are_aligned_to_target_positions():
    # Tokens: prompt 10 11 | policy 12 13 | env 14 | policy 15.
    # Target j is token j+1: targets 11 12 13 14 15; policy targets are 12 13 15 (j = 1, 2, 4).
    traj = _trajectory(
        [10, 11, 12, 13, 14, 15],
        [False, False, True, True, False, True],
        [0.0, 0.0, -0.5, -0.25, 0.0, -1.0],
        reward=1.0,
        steps=[(3, 0.5, 0.5), (5, 0.75, 0.25)],  # step rewards on tokens 13 and 15
    )
    short = _trajectory([20, 21, 22], [False, True, True], [0.0, -2.0, -3.0], version=5)
    batch = build_batch([TrajectoryGroup(group_id="a", trajectories=[traj]), TrajectoryGroup(group_id="b", trajectories=[short])])
    assert batch.input_ids.tolist() == [[10, 11, 12, 13, 14, 15], [20, 21, 22, 0, 0, 0]]
    assert batch.attention_mask.tolist() == [[1] * 6, [1, 1, 1, 0, 0, 0]]
    assert batch.targets.tolist() == [[11, 12, 13, 14, 15], [21, 22, 0, 0, 0]]
    assert batch.mask.tolist() == [[0, 1, 1, 0, 1], [1, 1, 0, 0, 0]]
    assert batch.rollout_logprobs.tolist() == [[0, -0.5, -0.25, 0, -1.0], [-2.0, -3.0, 0, 0, 0]]
    # Token 13 is target 2, token 15 is target 4.
    assert batch.token_rewards.tolist() == [[0, 0, 0.5, 0, 0.25], [0] * 5]
    assert batch.step_mask.tolist() == [[0, 0, 1, 0, 1], [0] * 5]
    assert batch.rewards.tolist() == [1.0, 0.0]
    assert batch.group_index.tolist() == [0, 1] and batch.policy_version.tolist() == [3, 5]
    picked = batch.select([1])
    assert picked.input_ids.tolist() == [[20, 21, 22]] and picked.mask.tolist() == [[1, 1]]


def test_sharding_balances_tokens_and_is_deterministic():
    lengths = [10, 9, 8, 3, 2, 1]
    # Longest first to the lightest rank: 10→r0, 9→r1, 8→r1 (9<10), 3→r0 (10<17), 2→r0 (13<17), 1→r0 (15<17).
    assert shard_rows(lengths, 2) == [[0, 3, 4, 5], [1, 2]]
    assert shard_rows(lengths, 1) == [[0, 1, 2, 3, 4, 5]]


def test_micro_batches_respect_the_token_budget():
    lengths = [10, 9, 8, 3, 2, 1]
    # Sorted by length: 10, 9 → padded 2 × 10 = 20 ≤ 20; adding 8 would be 30.
    # Then 8, 3 → 16; adding 2 → 24 > 20. Then 2, 1 → 4.
    assert pack_micro_batches(list(range(6)), lengths, 20) == [[0, 1], [2, 3], [4, 5]]
    # A sequence longer than the budget gets a micro-batch of its own.
    assert pack_micro_batches([0, 5], lengths, 4) == [[0], [5]]


def test_every_rank_gets_the_same_number_of_passes():
    lengths = [10, 9, 8, 3, 2, 1]
    # Shards (above): r0 = rows 0, 3, 4, 5; r1 = rows 1, 2. Budget 20:
    # r0 → [0, 3] (2 × 10), [4, 5]; r1 → [1, 2] (2 × 9 = 18), then an empty pass
    # so both ranks run two (ZeRO-3 gathers parameters collectively).
    plan = plan_micro_batches(list(range(6)), lengths, 2, token_budget=20)
    assert plan == [[[0, 3], [4, 5]], [[1, 2], []]]


def test_unpadded_micro_batches_count_real_tokens_and_keep_row_order():
    lengths = [10, 9, 8, 3, 2, 1]
    # In order: 10 + 9 = 19 ≤ 20, + 8 = 27 > 20 → [0, 1]; 8 + 3 + 2 + 1 = 14 → [2, 3, 4, 5].
    # (Padded, the same budget needs three passes: the test above.)
    assert pack_micro_batches(list(range(6)), lengths, 20, padded=False) == [[0, 1], [2, 3, 4, 5]]
    # The given order is kept (a group's rows stay together), not sorted by length.
    assert pack_micro_batches([5, 0, 4, 1], lengths, 12, padded=False) == [[5, 0], [4, 1]]
    assert pack_micro_batches([0, 5], lengths, 4, padded=False) == [[0], [5]]

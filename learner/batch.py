"""From TrajectoryGroup messages to padded tensors, and how to cut them up.

Alignment. A causal LM's logits at position k predict token k+1, so every
per-token tensor here is indexed by *target* position j = k − 1 for token k:

    input_ids      (B, L)      the tokens, right-padded
    targets        (B, T)      input_ids[:, 1:]            T = L − 1
    mask           (B, T)      loss_mask[:, 1:]: 1 where the target token was sampled by the policy
    rollout_logprobs (B, T)    logprobs[:, 1:]: the sampler's log π(target)
    token_rewards  (B, T)      step rewards at their token's target position
    step_mask      (B, T)      1 where a step reward sits
    valid          (B,)        the episode was not cut short by an infrastructure failure
    sampling       (B, T, 3)   temperature, top_k, top_p of the turn that sampled each target
                               (None when no turn truncated its support: the full vocabulary)
    token_versions (B, T)      weights version that sampled each target (Turn.segments with
                               partial rollouts, else the turn's policy_version); 0 off the mask

The value V(s) of the state before token k is the critic's output at position
k − 1, which is target position j: values need no extra shift.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from outrider.proto.v1.trajectory_pb2 import INFRA_FAILURE_NONE, TrajectoryGroup


@dataclass(frozen=True)
class SequenceBatch:
    """B sequences of the learner step, padded to a common length."""

    input_ids: Tensor
    """Shape: (B, L) long, right-padded with 0."""
    attention_mask: Tensor
    """Shape: (B, L) long; 1 on real tokens."""
    mask: Tensor
    """Shape: (B, T) float; 1 on policy-sampled target tokens."""
    rollout_logprobs: Tensor
    """Shape: (B, T) float32; the sampler's log-probabilities, 0 off the mask."""
    rewards: Tensor
    """Shape: (B,) float32; outcome reward."""
    token_rewards: Tensor
    """Shape: (B, T) float32; step rewards placed at their token."""
    step_mask: Tensor
    """Shape: (B, T) float32; 1 where a step reward sits."""
    group_index: Tensor
    """Shape: (B,) long; index of the sequence's group in the step."""
    policy_version: Tensor
    """Shape: (B,) long; oldest weights version that sampled the sequence."""
    lengths: Tensor
    """Shape: (B,) long; real length L_i of each sequence."""
    prompt_lengths: Tensor
    """Shape: (B,) long; tokens of the initial prompt (shared by a group's sequences)."""
    valid: Tensor
    """Shape: (B,) bool; False for an episode that infrastructure cut short (Trajectory.infra_failure)."""
    correct: Tensor
    """Shape: (B,) bool; the environment judged the task solved (Trajectory.solved)."""
    sampling: Tensor | None = None
    """Shape: (B, T, 3) float; temperature, top_k, top_p each target was sampled with
    (Turn.sampling; 1, 0, 1 where the full vocabulary was); None: no truncation anywhere."""
    token_versions: Tensor | None = None
    """Shape: (B, T) long; the weights version that sampled each target token (a partial
    rollout's segments differ), 0 off the mask; None: not known (offline data)."""

    @property
    def targets(self) -> Tensor:
        return self.input_ids[:, 1:]

    @property
    def size(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device: torch.device) -> SequenceBatch:
        if device.type == "cpu":
            return self
        return SequenceBatch(**{f.name: _to(getattr(self, f.name), device) for f in fields(self)})

    def select(self, rows: list[int]) -> SequenceBatch:
        """The given sequences, re-padded to their own longest length."""
        index = torch.tensor(rows, dtype=torch.long)
        length = int(self.lengths[index].max()) if rows else 1
        return SequenceBatch(
            input_ids=self.input_ids[index, :length],
            attention_mask=self.attention_mask[index, :length],
            mask=self.mask[index, : length - 1],
            rollout_logprobs=self.rollout_logprobs[index, : length - 1],
            rewards=self.rewards[index],
            token_rewards=self.token_rewards[index, : length - 1],
            step_mask=self.step_mask[index, : length - 1],
            group_index=self.group_index[index],
            policy_version=self.policy_version[index],
            lengths=self.lengths[index],
            prompt_lengths=self.prompt_lengths[index],
            valid=self.valid[index],
            correct=self.correct[index],
            sampling=None if self.sampling is None else self.sampling[index, : length - 1],
            token_versions=None if self.token_versions is None else self.token_versions[index, : length - 1],
        )

    def rollout_lags(self, version: int) -> Tensor | None:
        """(B, T) long: V − v_t on the mask, 0 off it, for the learner at version V — how many
        versions before π_old each sampled token's weights were; None without token versions."""
        if self.token_versions is None:
            return None
        return (version - self.token_versions) * self.mask.long()

    def only_rows(self, keep: Tensor) -> SequenceBatch:
        """The same batch with nothing to learn outside ``keep`` (B,): its rows' loss mask,
        step rewards and step mask are 0, so no count, mean or loss includes them."""
        row = keep.bool()[:, None].to(self.mask.dtype)
        return replace(self, mask=self.mask * row, token_rewards=self.token_rewards * row, step_mask=self.step_mask * row)


def _to(value: Tensor | None, device: torch.device) -> Tensor | None:
    return None if value is None else value.to(device)


# Turn.sampling unset: temperature 1, no top-k, no nucleus (the full vocabulary).
FULL_SUPPORT = (1.0, 0.0, 1.0)


def _sampling(trajectories: list, length: int) -> Tensor | None:
    """(B, T, 3) temperature, top_k, top_p per target position; None when no turn truncated."""
    if not any(turn.HasField("sampling") for _, _, traj in trajectories for turn in traj.turns):
        return None
    sampling = torch.tensor(FULL_SUPPORT).repeat(len(trajectories), length - 1, 1)
    for row, (_, _, traj) in enumerate(trajectories):
        for turn in traj.turns:
            if turn.HasField("sampling"):
                # Token k is target k − 1; token 0 is never a target (it is the prompt's).
                first, end = max(turn.start - 1, 0), turn.start + turn.completion_length - 1
                params = turn.sampling
                sampling[row, first:end] = torch.tensor([params.temperature, float(params.top_k), params.top_p])
    return sampling


def turn_versions(turn) -> list[tuple[int, int, int]]:
    """(first token, end, version) of each segment of a turn's completion: Turn.segments in
    order from Turn.start, or the whole completion by Turn.policy_version when it has none."""
    if not turn.segments:
        return [(turn.start, turn.start + turn.completion_length, turn.policy_version)]
    spans, first = [], turn.start
    for segment in turn.segments:
        spans.append((first, first + segment.length, segment.policy_version))
        first += segment.length
    return spans


def _token_versions(trajectories: list, length: int) -> Tensor:
    """(B, T) weights version of each target token; 0 where no turn sampled it."""
    versions = torch.zeros(len(trajectories), length - 1, dtype=torch.long)
    for row, (_, _, traj) in enumerate(trajectories):
        for turn in traj.turns:
            for first, end, version in turn_versions(turn):
                # Token k is target k − 1 (token 0, the prompt's, is never a target).
                versions[row, max(first - 1, 0) : max(end - 1, 0)] = version
    return versions


def build_batch(groups: list[TrajectoryGroup]) -> SequenceBatch:
    """Stack every trajectory of `groups` (validated by outrider.transport.validate)."""
    trajectories = [(g_index, group, traj) for g_index, group in enumerate(groups) for traj in group.trajectories]
    if not trajectories:
        raise ValueError("no trajectories to build a batch from")
    longest = max(len(traj.token_ids) for _, _, traj in trajectories)
    b, length = len(trajectories), max(longest, 2)
    input_ids = torch.zeros(b, length, dtype=torch.long)
    attention = torch.zeros(b, length, dtype=torch.long)
    loss_mask = torch.zeros(b, length)
    logprobs = torch.zeros(b, length)
    token_rewards = torch.zeros(b, length - 1)
    step_mask = torch.zeros(b, length - 1)
    rewards = torch.zeros(b)
    group_index = torch.zeros(b, dtype=torch.long)
    versions = torch.zeros(b, dtype=torch.long)
    lengths = torch.zeros(b, dtype=torch.long)
    prompt_lengths = torch.zeros(b, dtype=torch.long)
    valid = torch.ones(b, dtype=torch.bool)
    correct = torch.zeros(b, dtype=torch.bool)
    for row, (g_index, group, traj) in enumerate(trajectories):
        n = len(traj.token_ids)
        input_ids[row, :n] = torch.tensor(traj.token_ids, dtype=torch.long)
        attention[row, :n] = 1
        loss_mask[row, :n] = torch.tensor(traj.loss_mask, dtype=torch.float32)
        logprobs[row, :n] = torch.tensor(traj.logprobs, dtype=torch.float32)
        for step in traj.step_rewards:
            if step.token_index >= 1:  # token 0 is never a target
                token_rewards[row, step.token_index - 1] += step.reward
                step_mask[row, step.token_index - 1] = 1.0
        rewards[row] = traj.outcome_reward
        group_index[row] = g_index
        turn_versions = [turn.policy_version for turn in traj.turns]
        versions[row] = min(turn_versions) if turn_versions else group.policy_version
        lengths[row] = max(n, 2)
        prompt_lengths[row] = traj.prompt_length
        valid[row] = traj.infra_failure == INFRA_FAILURE_NONE
        correct[row] = traj.solved
    mask = loss_mask[:, 1:]
    return SequenceBatch(
        input_ids=input_ids,
        attention_mask=attention,
        mask=mask,
        rollout_logprobs=logprobs[:, 1:] * mask,
        rewards=rewards,
        token_rewards=token_rewards * mask,
        step_mask=step_mask * mask,
        group_index=group_index,
        policy_version=versions,
        lengths=lengths,
        prompt_lengths=prompt_lengths,
        valid=valid,
        correct=correct,
        sampling=_sampling(trajectories, length),
        token_versions=_token_versions(trajectories, length) * mask.long(),
    )


def shard_rows(lengths: list[int], world_size: int) -> list[list[int]]:
    """Split sequence indices over ranks with balanced token counts.

    Longest first, each to the rank with the fewest tokens so far (ties: lowest
    rank); deterministic, so every rank computes the same plan.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    shards: list[list[int]] = [[] for _ in range(world_size)]
    load = [0] * world_size
    for row in order:
        rank = min(range(world_size), key=lambda r: (load[r], r))
        shards[rank].append(row)
        load[rank] += lengths[row]
    return [sorted(shard) for shard in shards]


def pack_micro_batches(rows: list[int], lengths: list[int], token_budget: int, padded: bool = True) -> list[list[int]]:
    """Group `rows` into micro-batches that fit the token budget; a sequence longer than the
    budget gets a micro-batch of its own.

    padded (a forward over right-padded rows): the size is count × longest, and rows are
    sorted by length so that sequences of similar length share padding. Not padded (the
    packed pass of outrider.learner.forward, which computes real tokens only): the size is
    the sum of the lengths, and rows keep their order, so that a group's rows, which share
    a prompt computed once per micro-batch, stay together.
    """
    micro: list[list[int]] = []
    current: list[int] = []
    size = 0
    ordered = sorted(rows, key=lambda i: (-lengths[i], i)) if padded else rows
    for row in ordered:
        grown = max(size, lengths[row]) if padded else size + lengths[row]
        if current and (grown * (len(current) + 1) if padded else grown) > token_budget:
            micro.append(current)
            current, grown = [], lengths[row]
        current.append(row)
        size = grown
    if current:
        micro.append(current)
    return micro


def plan_micro_batches(
    rows: list[int], lengths: list[int], world_size: int, token_budget: int, padded: bool = True
) -> list[list[list[int]]]:
    """Per rank, the micro-batches of `rows` (`padded`: see `pack_micro_batches`). Every
    rank gets the same number of micro-batches (an empty list means "a pass with nothing
    to learn"): under ZeRO-3 every forward gathers parameters collectively, so all ranks
    must run the same number of passes."""
    shards = shard_rows([lengths[i] for i in rows], world_size)
    per_rank = [
        pack_micro_batches([rows[i] for i in shard], lengths, token_budget, padded) for shard in shards
    ]
    count = max(len(plan) for plan in per_rank) if per_rank else 0
    return [plan + [[] for _ in range(count - len(plan))] for plan in per_rank]

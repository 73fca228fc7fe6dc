"""A captured agent session's calls, assembled into trajectories (docs/agents.md).

The calls come from the policy service's capture (`CapturedCall`, agent.proto), in the
order they were served. A call whose prompt extends the tokens so far (the previous
call's prompt and completion, token for token) continues the current sequence:

    tokens    = prompt_1 | completion_1 | prompt_2[len(so far):] | completion_2 | ...
    loss_mask =  0 ... 0 |  1 ....... 1 |  0 ................. 0 | 1 ....... 1  | ...
    logprobs  =  0 ... 0 |  sampled lps |  0 ................. 0 | sampled lps  | ...

which is the flat multi-turn layout of `Trajectory` (trajectory.proto): what the agent
added between two calls (tool results, user turns, template text) is the turn's
observation. A call whose prompt does not extend them (the agent summarised, truncated or
edited its history) starts a new sequence of the same episode; the episode's reward is
given to every sequence. Nothing is re-tokenized: every token is one the policy was
conditioned on or sampled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from outrider.proto.v1.agent_pb2 import CapturedCall
from outrider.proto.v1.trajectory_pb2 import Trajectory


@dataclass
class AssemblyReport:
    """What became of a session's calls: shown per session, so a user sees where an agent
    breaks token exactness."""

    calls: int = 0
    sequences: int = 0
    breaks: list[int] = field(default_factory=list)
    """Calls (indices) whose prompt did not extend the tokens before them: each began a new sequence."""
    spliced: int = 0
    """Calls whose prompt the policy service spliced onto the previous call's tokens."""

    def summary(self) -> str:
        where = f", history rewritten at call {', '.join(map(str, self.breaks))}" if self.breaks else ""
        return f"{self.calls} calls -> {self.sequences} sequence(s){where}"


def _extends(prompt: Sequence[int], so_far: list[int]) -> bool:
    return len(prompt) >= len(so_far) and list(prompt[: len(so_far)]) == so_far


def assemble(calls: Sequence[CapturedCall], trajectory_id: str) -> tuple[list[Trajectory], AssemblyReport]:
    """Trajectories of one episode (ids `trajectory_id`, then `trajectory_id#1`, ...), rewards unset."""
    report = AssemblyReport(calls=len(calls))
    sequences: list[Trajectory] = []
    current: Trajectory | None = None
    for index, call in enumerate(calls):
        if len(call.completion_logprobs) != len(call.completion_token_ids):
            raise ValueError(f"call {index}: {len(call.completion_logprobs)} log-probs for "
                             f"{len(call.completion_token_ids)} completion tokens")
        prompt = list(call.prompt_token_ids)
        report.spliced += call.spliced
        if current is not None and _extends(prompt, list(current.token_ids)):
            added = prompt[len(current.token_ids):]
            current.turns[-1].observation_length = len(added)
        else:
            if current is not None:
                report.breaks.append(index)
            suffix = f"#{len(sequences)}" if sequences else ""
            current = Trajectory(trajectory_id=trajectory_id + suffix, prompt_length=len(prompt))
            sequences.append(current)
            added = prompt
        current.token_ids.extend(added)
        current.logprobs.extend([0.0] * len(added))
        current.loss_mask.extend([False] * len(added))
        turn = current.turns.add(start=len(current.token_ids), completion_length=len(call.completion_token_ids),
                                 policy_version=call.policy_version, finish_reason=call.finish_reason)
        if call.HasField("sampling"):
            turn.sampling.CopyFrom(call.sampling)
        current.token_ids.extend(call.completion_token_ids)
        current.logprobs.extend(call.completion_logprobs)
        current.loss_mask.extend([True] * len(call.completion_token_ids))
    report.sequences = len(sequences)
    return sequences, report

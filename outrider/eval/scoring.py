"""Correct solutions scored under the base model: the numbers behind "were RL's solutions
already likely under the base?".

A solution is a correct episode's token ids with its completion spans. Its score is

    base_logprob_sum = Σ_{i ∈ completion tokens} log π_base(token_i | tokens_<i)

teacher-forced with ScoreTokens on the policy service serving the base, over the whole
episode (environment replies included as context, not scored); perplexity under the
base is exp(−base_logprob_sum / tokens).
"""

from __future__ import annotations

from collections.abc import Sequence

from outrider.eval.records import Solution
from outrider.proto.v1 import trajectory_pb2
from outrider.rollout.evaluation import completion_positions


def score_solutions(policy, solutions: Sequence[trajectory_pb2.Trajectory], batch: int | None = None) -> list[Solution]:
    """One Solution per trajectory with completion tokens, in order; ScoreTokens calls of up to `batch` sequences
    (default: the service's `max_prompts`)."""
    batch = batch or max(1, policy.info().max_prompts)
    out: list[Solution] = []
    for start in range(0, len(solutions), batch):
        chunk = solutions[start : start + batch]
        reply = policy.score_tokens([(list(s.token_ids), s.prompt_length) for s in chunk])
        for solution, scored in zip(chunk, reply.sequences, strict=True):
            logprobs = list(scored.logprobs)
            # logprobs[j] belongs to token prompt_length + j.
            positions = completion_positions(solution.turns)
            if not positions:
                continue  # solved without a single sampled token: nothing to score
            total = sum(logprobs[i - solution.prompt_length] for i in positions)
            # A sum of log-probabilities is <= 0; float32 rounding of a near-certain token may not be.
            out.append(Solution(tokens=len(positions), base_logprob_sum=min(0.0, float(total))))
    return out

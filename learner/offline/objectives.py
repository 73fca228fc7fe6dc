"""What SFT and DPO compute on a micro-batch; the step loop (trainer.py) is shared.

An objective sees a step's examples, plans its micro-batches, and returns each
micro-batch's loss already scaled so that the ranks' summed gradients equal the
gradient of the whole step's loss (DeepSpeed averages gradients over ranks, hence the
factor world_size; learner/step.py does the same).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from outrider.learner.algorithms import Configured
from outrider.learner.algos import PreferenceInputs
from outrider.learner.batch import SequenceBatch, plan_micro_batches
from outrider.learner.engine import device_of
from outrider.learner.models import token_logprobs
from outrider.learner.offline.data import Pair
from outrider.learner.offline.render import Tokenized


def sequence_batch(sequences: Sequence[Tokenized], device: torch.device) -> SequenceBatch:
    """Right-padded tensors in the learner's layout (outrider.learner.batch): targets are
    input_ids[:, 1:], and mask[:, j] says whether target j (token j + 1) is trained. The
    RL-only fields are zeros; the prompt length is the tokens before the first trained one
    (the forward runs a shared prefix once, outrider.learner.forward)."""
    b = len(sequences)
    length = max(2, max(len(s.token_ids) for s in sequences))
    input_ids = torch.zeros(b, length, dtype=torch.long)
    attention = torch.zeros(b, length, dtype=torch.long)
    token_mask = torch.zeros(b, length)
    prompt_lengths = torch.zeros(b, dtype=torch.long)
    for row, s in enumerate(sequences):
        n = len(s.token_ids)
        input_ids[row, :n] = torch.tensor(s.token_ids, dtype=torch.long)
        attention[row, :n] = 1
        token_mask[row, :n] = torch.tensor(s.mask, dtype=torch.float32)
        prompt_lengths[row] = s.mask.index(True) if any(s.mask) else n
    zeros_bt = torch.zeros(b, length - 1)
    batch = SequenceBatch(
        input_ids=input_ids,
        attention_mask=attention,
        mask=token_mask[:, 1:],
        rollout_logprobs=zeros_bt,
        rewards=torch.zeros(b),
        token_rewards=zeros_bt,
        step_mask=zeros_bt,
        group_index=torch.arange(b),
        policy_version=torch.zeros(b, dtype=torch.long),
        lengths=attention.sum(1).clamp(min=2),
        prompt_lengths=prompt_lengths,
        valid=torch.ones(b, dtype=torch.bool),
        correct=torch.zeros(b, dtype=torch.bool),
    )
    return batch.to(device)


def sequence_logprobs(model: nn.Module, sequences: Sequence[Tokenized], device: torch.device, mean: bool) -> Tensor:
    """log π(y|x) of each sequence's trained tokens: Σ_j mask_j log π(y_j | y_<j), or that
    sum over Σ_j mask_j when ``mean``. Shape: (B,)."""
    batch = sequence_batch(sequences, device)
    logprobs, _ = token_logprobs(model, batch)
    total = (logprobs * batch.mask).sum(-1)
    return total / batch.mask.sum(-1).clamp(min=1) if mean else total


@dataclass
class SFTObjective:
    """Mean negative log-likelihood over the step's trained tokens:

        L = −Σ_i Σ_j m_ij log π(y_ij | y_i,<j) / Σ_i Σ_j m_ij
    (token mean over the whole step, so a long answer weighs by its tokens, as in RL's
    token_mean aggregation)."""

    def cost(self, example: Tokenized) -> int:
        return len(example.token_ids)

    def prepare(self, examples: Sequence[Tokenized]) -> dict:
        return {"tokens": float(sum(max(e.trained - int(e.mask[0]), 0) for e in examples))}

    def micro_loss(self, actor: nn.Module, items: Sequence[Tokenized], _indices, step: dict, world: int, device):
        batch = sequence_batch(items, device)
        logprobs, _ = token_logprobs(actor, batch)
        nll = -(logprobs * batch.mask).sum()
        tokens = float(batch.mask.sum())
        return nll / max(step["tokens"], 1.0) * world, {"nll_sum": float(nll.detach()), "tokens": tokens}

    def step_metrics(self, totals: dict[str, float]) -> dict[str, float]:
        return {"loss": totals["nll_sum"] / max(totals["tokens"], 1.0), "tokens": totals["tokens"]}


def pair_cost(pair: Pair) -> int:
    """Padded tokens of a pair's pass: both responses run together, padded to the longer."""
    return 2 * max(len(pair.chosen.token_ids), len(pair.rejected.token_ids))


@dataclass
class DPOObjective:
    """A preference loss from the registry (``dpo``, ``ipo``) on sequence log-probabilities
    of chosen and rejected responses, averaged over the step's pairs:

        L = (1/P) Σ_p ℓ(log π_θ(y_w), log π_θ(y_l), log π_ref(y_w), log π_ref(y_l))
    The reference log-probs are computed once before training (``reference``: (N, 2),
    chosen and rejected per pair of the dataset) and indexed by pair."""

    loss: Configured
    reference: Tensor
    mean: bool = False

    def cost(self, pair: Pair) -> int:
        return pair_cost(pair)

    def prepare(self, pairs: Sequence[Pair]) -> dict:
        return {"pairs": float(len(pairs))}

    def micro_loss(self, actor: nn.Module, items: Sequence[Pair], indices, step: dict, world: int, device):
        n = len(items)
        logprobs = sequence_logprobs(actor, [p.chosen for p in items] + [p.rejected for p in items], device, self.mean)
        ref = self.reference[list(indices)].to(device)
        inputs = PreferenceInputs(logprobs[:n], logprobs[n:], ref[:, 0], ref[:, 1])
        out = self.loss(inputs)
        with torch.no_grad():
            # h = [log π_θ(y_w) − log π_ref(y_w)] − [log π_θ(y_l) − log π_ref(y_l)]
            h = (logprobs[:n] - ref[:, 0]) - (logprobs[n:] - ref[:, 1])
        metrics = {
            "loss_sum": float(out.loss.detach().sum()),
            "margin_sum": float(h.sum()),
            "correct": float((h > 0).sum()),
            "chosen_logprob_sum": float(logprobs[:n].detach().sum()),
            "rejected_logprob_sum": float(logprobs[n:].detach().sum()),
            "pairs": float(n),
        }
        return out.loss.sum() / step["pairs"] * world, metrics

    def step_metrics(self, totals: dict[str, float]) -> dict[str, float]:
        pairs = max(totals["pairs"], 1.0)
        return {
            "loss": totals["loss_sum"] / pairs,
            "margin": totals["margin_sum"] / pairs,
            "accuracy": totals["correct"] / pairs,
            "chosen_logprob": totals["chosen_logprob_sum"] / pairs,
            "rejected_logprob": totals["rejected_logprob_sum"] / pairs,
            "pairs": totals["pairs"],
        }


@torch.no_grad()
def reference_logprobs(reference: nn.Module, pairs: Sequence[Pair], budget: int, mean: bool) -> Tensor:
    """log π_ref(y_w|x) and log π_ref(y_l|x) of every pair, once, before training.
    Each rank scores its share (the same number of passes on every rank: a ZeRO-3
    reference gathers its parameters collectively); the shares are gathered. Shape: (N, 2)."""
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    costs = [pair_cost(p) for p in pairs]
    plan = plan_micro_batches(list(range(len(pairs))), costs, world, budget)[rank]
    device = device_of(reference)
    mine: list[tuple[list[int], list[list[float]]]] = []
    for rows in plan:
        take = rows or [0]
        items = [pairs[i] for i in take]
        scores = sequence_logprobs(reference, [p.chosen for p in items] + [p.rejected for p in items], device, mean)
        if rows:
            n = len(rows)
            mine.append((rows, torch.stack([scores[:n], scores[n:]], 1).double().cpu().tolist()))
    parts = [mine]
    if world > 1:
        parts = [None] * world
        dist.all_gather_object(parts, mine)
    out = torch.zeros(len(pairs), 2, dtype=torch.float64)
    for part in parts:
        for rows, values in part:
            out[rows] = torch.tensor(values, dtype=torch.float64)
    return out.float()

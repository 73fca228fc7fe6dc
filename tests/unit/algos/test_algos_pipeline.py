"""The learner's view: every registered entry runs through its kind's one signature, driven by
its ``requires`` only, with no branching on names; also in float32."""

from __future__ import annotations

import pytest
import torch

from outrider.learner import algos as A

B, T = 6, 9


def full_batch(dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(B, T, generator=gen) > 0.25
    mask[:, 0] = True
    logits = torch.randn(B, T, 13, generator=gen).to(dtype).requires_grad_()
    labels = torch.randint(0, 13, (B, T), generator=gen)
    return {
        "mask": mask,
        "group_index": torch.tensor([0, 0, 0, 1, 1, 1]),
        "rewards": (torch.rand(B, generator=gen) > 0.5).to(dtype),
        "values": torch.randn(B, T, generator=gen).to(dtype),
        "step_mask": mask & (torch.rand(B, T, generator=gen) > 0.6),
        "step_scores": torch.rand(B, T, generator=gen).to(dtype),
        "logits": logits,
        "labels": labels,
        "old_logprobs": torch.log_softmax(torch.randn(B, T, 13, generator=gen), -1).gather(-1, labels[..., None]).squeeze(-1).to(dtype),
        "ref_logprobs": -torch.rand(B, T, generator=gen).to(dtype),
        "rollout_logprobs": -torch.rand(B, T, generator=gen).to(dtype),
        # Versions behind π_old of each token (partial rollouts: segments of one sequence differ).
        "rollout_lags": torch.randint(0, 3, (B, T), generator=gen) * mask.long(),
    }


def advantage_inputs(batch, entry):
    token_rewards = A.step_rewards_from_scores(batch["step_scores"], batch["step_mask"])
    return A.AdvantageInputs(
        batch["rewards"], batch["mask"], batch["group_index"],
        values=batch["values"] if "values" in entry.requires else None,
        # objective_weights accepts outcome rewards only; every other estimator gets the step rewards.
        token_rewards=token_rewards if "token_rewards" in entry.requires or entry.name != "objective_weights" else None,
        step_mask=batch["step_mask"],
    )


def cycled(*registries):
    # Every entry of every registry at least once, in max(len) combinations.
    lists = [list(r) for r in registries]
    return [tuple(lst[i % len(lst)] for lst in lists) for i in range(max(len(lst) for lst in lists))]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_every_entry_runs_through_the_uniform_signatures(dtype):
    batch = full_batch(dtype)
    combos = cycled(A.ADVANTAGE_ESTIMATORS, A.POLICY_LOSSES, A.AGGREGATIONS, A.KL_ESTIMATORS)
    for adv_entry, loss_entry, agg_entry, kl_entry in combos:
        adv = adv_entry(advantage_inputs(batch, adv_entry))
        assert adv.advantages.shape == (B, T) and torch.isfinite(adv.advantages).all(), adv_entry.name
        assert not adv.advantages.requires_grad
        logprobs = A.logprobs_from_logits(batch["logits"], batch["labels"], chunk_size=7).to(dtype)
        inputs = A.PolicyLossInputs(
            logprobs, batch["old_logprobs"], adv.advantages, batch["mask"],
            entropy=A.entropy_from_logits(batch["logits"], chunk_size=7).to(dtype),
            rollout_logprobs=batch["rollout_logprobs"], rollout_lags=batch["rollout_lags"], generator=torch.Generator().manual_seed(0),
            penalty_coef=0.1,  # what the learner's penalty controller passes (read by ppo_kl only)
        )
        metrics = {}
        for transform in A.LOSS_TRANSFORMS:  # all of them, in registry order
            res = transform(inputs)
            inputs, metrics = res.inputs, {**metrics, **res.metrics}
        out = loss_entry(inputs)
        kl = kl_entry(A.KLInputs(logprobs, batch["ref_logprobs"], batch["old_logprobs"]))
        token_loss = out.loss + A.kl_loss_term(kl, 0.01, A.get_kl_placement("loss"))
        loss = agg_entry(A.AggregationInputs(token_loss, inputs.mask))
        (grad,) = torch.autograd.grad(loss, batch["logits"])
        assert loss.dim() == 0 and loss.dtype == dtype and torch.isfinite(loss), (adv_entry.name, loss_entry.name)
        assert torch.isfinite(grad).all()
        metrics.update(out.metrics)
        assert all(v.dim() == 0 and not v.requires_grad for v in metrics.values())

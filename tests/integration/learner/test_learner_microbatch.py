"""Token-budget micro-batching does not change the update (single rank, real DeepSpeed)."""

from __future__ import annotations

import pytest
import torch

from outrider.config import parse_config
from outrider.learner.algorithms import Algorithms
from outrider.learner.batch import build_batch
from outrider.learner.engine import init_distributed, trainable_engine
from outrider.learner.models import load_actor
from outrider.learner.step import Models, StepPlan, learner_step
from testkit.learner import learnable_groups

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("aggregation", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"])
def test_the_update_is_the_same_whatever_the_micro_batch_budget(aggregation):
    init_distributed("gloo")
    # AdamW's first step is lr · g / (|g| + eps): with eps far above |g| it is
    # ≈ lr · g / eps, linear in the gradient, so equal updates mean equal gradients.
    cfg = parse_config(
        {"learner": {"optimizer": {"lr": 1.0, "eps": 1e3, "grad_clip": None}, "algorithm": {"aggregation": {"name": aggregation}}}}
    ).learner
    groups = learnable_groups(2, per_group=4)
    # Different lengths, so micro-batches pad differently.
    del groups[1].trajectories[0].token_ids[-3:], groups[1].trajectories[0].logprobs[-3:], groups[1].trajectories[0].loss_mask[-3:]
    groups[1].trajectories[0].turns[0].completion_length -= 3
    batch = build_batch(groups)
    # Non-zero advantages at ratio 1 need unequal rewards inside each group: they are (good vs bad).
    deltas = {}
    for budget in (4096, 24):
        torch.manual_seed(0)
        engine = trainable_engine(load_actor("tiny-random"), cfg.engine, cfg.optimizer)
        before = {n: p.detach().clone() for n, p in engine.module.named_parameters()}
        plan = StepPlan(rank=0, world_size=1, token_budget=budget, mini_batches=1, epochs=1, seed=0, step=0)
        metrics = learner_step(Models(actor=engine), Algorithms.from_config(cfg.algorithm), batch, 0.0, plan)
        deltas[budget] = {n: p.detach() - before[n] for n, p in engine.module.named_parameters()}
        deltas[f"loss{budget}"] = metrics["actor/loss"]
    whole, pieces = deltas[4096], deltas[24]
    norm = torch.sqrt(sum((d**2).sum() for d in whole.values()))
    assert norm > 0, "the step changed the weights"
    difference = torch.sqrt(sum(((whole[n] - pieces[n]) ** 2).sum() for n in whole))
    # Only float32 rounding differs (other shapes, other summation order): ~1e-5 at most.
    assert difference / norm < 5e-5, float(difference / norm)
    assert deltas["loss24"] == pytest.approx(deltas["loss4096"], abs=1e-6)

"""The value critic on a real (single-rank) DeepSpeed engine."""

from __future__ import annotations

import pytest
import torch

from outrider.config import parse_config
from outrider.learner.algorithms import Algorithms
from outrider.learner.algos import ADVANTAGE_ESTIMATORS, AdvantageInputs
from outrider.learner.batch import build_batch, plan_micro_batches
from outrider.learner.engine import init_distributed, trainable_engine
from outrider.learner.models import load_actor, load_critic
from outrider.learner.models import token_values
from outrider.learner.step import MetricSums, Models, Scores, StepPlan, advantages, learner_step, score, update_critic
from outrider.proto.v1.trajectory_pb2 import Trajectory, TrajectoryGroup

pytestmark = pytest.mark.slow


def _groups() -> list[TrajectoryGroup]:
    """Four sequences with distinct prompts (so every state is distinguishable)
    and a reward that depends on the prompt: values are exactly learnable."""
    groups = []
    for g in range(2):
        group = TrajectoryGroup(group_id=f"c{g}", policy_version=0)
        for i in range(2):
            prompt = [1, 50 + 10 * g + i, 60, 70]
            completion = [200 + i, 300, 400 + g, 2][: 3 + i]
            group.trajectories.append(
                Trajectory(
                    trajectory_id=f"c{g}/{i}",
                    prompt_length=len(prompt),
                    token_ids=prompt + completion,
                    logprobs=[0.0] * (len(prompt) + len(completion)),
                    loss_mask=[False] * len(prompt) + [True] * len(completion),
                    outcome_reward=[0.2, 0.9, -0.5, 0.4][2 * g + i],
                )
            )
        groups.append(group)
    return groups


@pytest.fixture(scope="module")
def engines():
    init_distributed("gloo")
    cfg = parse_config(
        {
            "learner": {
                # 100 AdamW steps at 1e-3 left the fitted values up to 0.14 off the
                # returns with transformers 5.19 (0.03 at 3e-3): the fit, not the bound, was short.
                "critic": {"enabled": True, "optimizer": {"lr": 3e-3}},
                "algorithm": {
                    "advantage": {"name": "gae", "params": {"gamma": 1.0, "lam": 0.9, "normalize": False}},
                    "value_clip": None,
                },
            }
        }
    ).learner
    actor = trainable_engine(load_actor("tiny-random"), cfg.engine, cfg.optimizer)
    critic = trainable_engine(load_critic("tiny-random", seed=0), cfg.engine, cfg.critic.optimizer)
    return Models(actor=actor, critic=critic), Algorithms.from_config(cfg.algorithm)


def test_critic_fits_synthetic_returns_and_gae_matches_the_library(engines):
    models, algos = engines
    batch = build_batch(_groups())
    rows = list(range(batch.size))
    plan = StepPlan(rank=0, world_size=1, token_budget=12, mini_batches=1, epochs=1, seed=0, step=0)
    # A small budget forces several micro-batches with different padding.
    plans = [plan_micro_batches(rows, batch.lengths.tolist(), 1, plan.token_budget)]
    assert len(plans[0][0]) > 1

    # Fit toward the Monte-Carlo returns (λ = 1: the targets do not move with
    # the values); only the critic runs in this loop.
    monte_carlo = ADVANTAGE_ESTIMATORS.get("gae").make_params(gamma=1.0, lam=1.0, normalize=False)
    fit_algos = Algorithms(**{**vars(algos), "advantage": type(algos.advantage)(algos.advantage.entry, monte_carlo)})
    losses = []
    for _ in range(100):
        with torch.no_grad():
            values = token_values(models.critic, batch) * batch.mask
        scores = Scores(old_logprobs=torch.zeros_like(values), entropy=torch.zeros_like(values), values=values)
        adv, _ = advantages(fit_algos, batch, scores, kl_coef=0.0)
        sums = MetricSums()
        update_critic(models, algos, batch, scores, adv, rows, plans[0][0], plan, sums)
        losses.append(sums.reduced()[1]["critic/loss"])
    assert losses[-1] < 0.01 * losses[0], (losses[0], losses[-1])
    assert losses[-1] < 5e-3

    # Reference: each sequence alone, unpadded, straight through the critic's
    # module; value of the state before token k sits at position k - 1.
    scores = score(models, algos, batch, plans, plan)
    values = torch.zeros_like(batch.mask)
    critic = models.critic.module
    with torch.no_grad():
        for row, traj in enumerate(t for g in _groups() for t in g.trajectories):
            out = critic(input_ids=torch.tensor([list(traj.token_ids)])).logits[0, :, 0]
            values[row, : len(traj.token_ids) - 1] = out[:-1] * batch.mask[row, : len(traj.token_ids) - 1]
    assert torch.allclose(scores.values, values, atol=1e-5)
    gae = ADVANTAGE_ESTIMATORS.get("gae")
    reference = gae(AdvantageInputs(rewards=batch.rewards, mask=batch.mask, values=values), algos.advantage.params)
    learner_adv, _ = advantages(algos, batch, scores, kl_coef=0.0)
    assert torch.allclose(learner_adv.advantages, reference.advantages, atol=1e-5)
    assert torch.allclose(learner_adv.returns, reference.returns, atol=1e-5)
    # The fitted critic predicts each sequence's return at every policy token.
    mc_returns = batch.rewards[:, None] * batch.mask
    assert torch.allclose(scores.values, mc_returns, atol=0.1)


def test_a_ppo_step_reports_its_scoring_pass_and_every_mini_batch_of_every_epoch_in_order(engines):
    models, algos = engines
    said = []
    plan = StepPlan(rank=0, world_size=1, token_budget=4096, mini_batches=2, epochs=2, seed=0, step=0)
    learner_step(models, algos, build_batch(_groups()), 0.0, plan, progress=said.append)
    assert said == [
        "scoring pass",
        "epoch 1/2, mini-batch 1/2", "epoch 1/2, mini-batch 2/2",
        "epoch 2/2, mini-batch 1/2", "epoch 2/2, mini-batch 2/2",
    ]

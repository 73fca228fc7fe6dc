"""Infra-failed episodes and PPO-KL's adaptive β in the real learner (DeepSpeed on gloo, CPU)."""

from __future__ import annotations


import pytest
import torch

from outrider.config import parse_config
from outrider.learner.algorithms import Algorithms
from outrider.learner.batch import build_batch
from outrider.learner.engine import init_distributed, trainable_engine
from outrider.learner.models import load_actor
from outrider.learner.step import Models, StepPlan, learner_step
from outrider.proto.v1.common_pb2 import ItemStatus
from outrider.proto.v1.trajectory_pb2 import INFRA_FAILURE_ENV_ERROR, Trajectory
from testkit.learner import learnable_groups, straight_and_interrupted

pytestmark = pytest.mark.slow


def _step(cfg, groups, penalty_coef=None, epochs=1):
    torch.manual_seed(0)
    engine = trainable_engine(load_actor("tiny-random"), cfg.engine, cfg.optimizer)
    before = {n: p.detach().clone() for n, p in engine.module.named_parameters()}
    plan = StepPlan(rank=0, world_size=1, token_budget=4096, mini_batches=1, epochs=epochs, seed=0, step=0)
    out = learner_step(Models(actor=engine), Algorithms.from_config(cfg.algorithm), build_batch(groups), 0.0, plan, penalty_coef)
    return out, {n: p.detach() - before[n] for n, p in engine.module.named_parameters()}


def test_infra_failed_episodes_change_nothing_in_the_update():
    init_distributed("gloo")
    # AdamW's first step with eps far above |g| is ≈ lr·g/eps: equal updates mean equal gradients.
    cfg = parse_config({"learner": {"optimizer": {"lr": 1.0, "eps": 1e3, "grad_clip": None}}}).learner
    clean = learnable_groups(2, per_group=4)
    with_failures = learnable_groups(2, per_group=4)
    for index, source in enumerate(with_failures[0].trajectories[:2]):
        failed = Trajectory()
        failed.CopyFrom(source)
        # A wild reward and a truncated completion: either would change the update if it leaked.
        failed.trajectory_id = f"{source.trajectory_id}-failed{index}"
        failed.outcome_reward = 5.0
        failed.infra_failure = INFRA_FAILURE_ENV_ERROR
        failed.status.CopyFrom(ItemStatus(code=ItemStatus.ERROR, message="sandbox crashed", source="env_error"))
        with_failures[0].trajectories.insert(1, failed)
    assert len(with_failures[0].trajectories) == 6
    plain_metrics, plain = _step(cfg, clean)
    failed_metrics, failed = _step(cfg, with_failures)
    norm = torch.sqrt(sum((d**2).sum() for d in plain.values()))
    assert norm > 0, "the step changed the weights"
    difference = torch.sqrt(sum(((plain[n] - failed[n]) ** 2).sum() for n in plain))
    assert difference / norm < 1e-6, float(difference / norm)
    assert failed_metrics["actor/loss"] == pytest.approx(plain_metrics["actor/loss"], abs=1e-7)
    assert (failed_metrics["infra_failed_episodes"], failed_metrics["trained_sequences"]) == (2.0, 8.0)
    assert plain_metrics["infra_failed_episodes"] == 0.0


def test_ppo_kl_reads_its_coefficient_and_the_drift_it_penalises():
    init_distributed("gloo")
    cfg = parse_config({"learner": {"optimizer": {"lr": 1e-2}, "algorithm": {"policy_loss": {"name": "ppo_kl"}}}}).learner
    out, deltas = _step(cfg, learnable_groups(2, per_group=4), penalty_coef=0.25, epochs=2)
    assert out["actor/penalty_coef"] == 0.25
    # The second epoch runs after an optimizer step: π_θ ≠ π_old, a positive KL to penalise.
    assert out["actor/kl_old"] > 0 and out["actor/approx_kl_k3"] > 0
    with pytest.raises(ValueError, match="needs inputs.penalty_coef"):
        _step(cfg, learnable_groups(1, per_group=4))


def test_ppo_kl_coefficient_survives_a_restart(any_redis_url, tmp_path):
    learner = {
        "ranks": 1,
        "engine": {"micro_batch_tokens": 64},
        # A target far below the drift of lr 1e-2: β doubles every step, so a β that was not
        # restored (back to 1.0) shows at once.
        "algorithm": {"epochs": 2, "policy_loss": {"name": "ppo_kl", "params": {"target_kl": 1e-9}}},
        "optimizer": {"lr": 1e-2},
    }
    straight, interrupted = straight_and_interrupted(any_redis_url, tmp_path, learner, tag="ppokl-")
    assert [straight[s]["actor/penalty_coef"] for s in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    for step in (3, 4):
        assert interrupted[step]["actor/penalty_coef"] == straight[step]["actor/penalty_coef"]
        assert interrupted[step]["actor/loss_epoch1"] == straight[step]["actor/loss_epoch1"]

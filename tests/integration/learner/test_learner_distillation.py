"""On-policy distillation in the real learner (DeepSpeed on gloo, CPU, tiny-random).

A teacher equal to the student must give no loss and no gradient in either placement;
a different teacher (tiny-random with seeded noise on every weight) a positive reverse
KL, and training on it pulls the student's log-probs of the batch to the teacher's.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from outrider.config import parse_config
from outrider.learner.algorithms import Algorithms
from outrider.learner.batch import build_batch
from outrider.learner.engine import frozen_module, init_distributed, trainable_engine
from outrider.learner.models import load_actor, load_teacher
from outrider.learner.step import Models, StepPlan, learner_step
from outrider.models import resolve_model
from testkit.learner import (
    BAD,
    GOOD,
    PROMPT,
    finish,
    learn_process,
    learnable_groups,
    metrics,
    produce_groups,
    sequence_logprobs,
    write_run_config,
)

pytestmark = pytest.mark.slow


def _learner_cfg(teacher: str, placement: str, lr: float = 1e-3, **distillation):
    algorithm = {
        "distillation": {"teacher": teacher, "placement": placement, "rl_coef": 0.0, **distillation},
        "scoring_pass": "always",  # measure distill_reverse_kl before the update in both placements
    }
    return parse_config({"learner": {"optimizer": {"lr": lr}, "algorithm": algorithm}}).learner


def _models(cfg) -> Models:
    torch.manual_seed(0)
    engine = trainable_engine(load_actor("tiny-random"), cfg.engine, cfg.optimizer)
    teacher = frozen_module(load_teacher(cfg.algorithm.distillation.teacher, engine.module), cfg.engine)
    return Models(actor=engine, teacher=teacher)


def _steps(cfg, models: Models, count: int) -> list[dict[str, float]]:
    algos = Algorithms.from_config(cfg.algorithm)
    batch = build_batch(learnable_groups(2, per_group=4))
    out = []
    for step in range(count):
        plan = StepPlan(rank=0, world_size=1, token_budget=4096, mini_batches=1, epochs=1, seed=0, step=step,
                        scoring_pass=cfg.algorithm.scoring_pass)
        out.append(learner_step(models, algos, batch, 0.0, plan))
    return out


@pytest.fixture(scope="module")
def noisy_teacher(tmp_path_factory) -> Path:
    model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random"), dtype=torch.float32)
    generator = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.5 * parameter.std().nan_to_num(0.02) * torch.randn(parameter.shape, generator=generator))
    folder = tmp_path_factory.mktemp("teacher")
    model.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("placement", ["advantage", "loss"])
def test_a_teacher_equal_to_the_student_gives_zero_loss_and_gradient(placement):
    init_distributed("gloo")
    cfg = _learner_cfg("tiny-random", placement)
    models = _models(cfg)
    before = {n: p.detach().clone() for n, p in models.actor.module.named_parameters()}
    (metrics,) = _steps(cfg, models, 1)
    assert metrics["distill_reverse_kl"] == 0.0
    assert metrics["actor/loss"] == 0.0
    assert metrics["actor/grad_norm"] == 0.0
    # AdamW with a zero gradient (no weight decay) leaves every weight as it was.
    assert all(torch.equal(p.detach(), before[n]) for n, p in models.actor.module.named_parameters())
    if placement == "advantage":  # rl_coef 0: the GRPO advantages (±0.866 here) are scaled away
        assert metrics["advantage_max"] == 0.0 and metrics["advantage_min"] == 0.0


def _gaps(student, teacher) -> torch.Tensor:
    """d = log π_θ(y) − log π_T(y) on the completion tokens of the batch (GOOD and BAD, as
    many tokens each), by plain transformers forwards, not the learner's scoring code."""
    return torch.cat([
        torch.tensor(sequence_logprobs(student, PROMPT, c)) - torch.tensor(sequence_logprobs(teacher, PROMPT, c))
        for c in (GOOD, BAD)
    ])


def _half_squared_gap(student, teacher) -> float:
    """mean ½d² over the batch's completion tokens: 0 only where student and teacher agree."""
    return float((0.5 * _gaps(student, teacher) ** 2).mean())


@pytest.mark.parametrize("placement", ["advantage", "loss"])
def test_distillation_to_a_different_teacher_pulls_the_student_to_it(placement, noisy_teacher):
    init_distributed("gloo")
    cfg = _learner_cfg(str(noisy_teacher), placement)
    models = _models(cfg)
    teacher = AutoModelForCausalLM.from_pretrained(noisy_teacher, dtype=torch.float32).eval()
    gaps = [_half_squared_gap(models.actor.module, teacher)]
    history = []
    for _ in range(5):
        history += _steps(cfg, models, 1)
        gaps.append(_half_squared_gap(models.actor.module, teacher))
    assert gaps[0] > 1.0, gaps
    assert all(b < a for a, b in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] < 0.1 * gaps[0], gaps
    loss = [m["actor/loss"] for m in history]
    first = history[0]
    assert first["distill_reverse_kl"] > 0.1 and first["actor/grad_norm"] > 0.0
    if placement == "advantage":
        # ppo_clip at ratio 1 with A_t = −d_t: token-mean loss = mean d_t, the reverse-KL metric.
        assert first["actor/loss"] == pytest.approx(first["distill_reverse_kl"], rel=1e-6)
    else:
        # k3_is ≥ 0: the loss itself must fall.
        assert loss[0] > 0.0 and loss[-1] < 0.1 * loss[0], loss


def test_both_placements_give_the_same_gradient_on_policy(noisy_teacher):
    # On-policy (r = 1), ∂/∂ℓ of k3_is = (π_θ/π_s)·(ρ − 1 − log ρ) is k3 + (1 − ρ) = −log ρ = d:
    # the loss placement's gradient is d·∇ℓ, the advantage placement's (A = −d in −A·r) too.
    init_distributed("gloo")
    norms = {}
    for placement in ("advantage", "loss"):
        cfg = _learner_cfg(str(noisy_teacher), placement)
        (metrics,) = _steps(cfg, _models(cfg), 1)
        norms[placement] = metrics["actor/grad_norm"]
    assert norms["advantage"] > 1.0
    assert norms["loss"] == pytest.approx(norms["advantage"], rel=1e-5)


def test_the_teacher_must_share_the_actor_vocabulary(tmp_path):
    model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random"), dtype=torch.float32)
    model.resize_token_embeddings(model.get_input_embeddings().weight.shape[0] + 8)
    model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"learner.algorithm.distillation.teacher .* vocabulary of"):
        load_teacher(str(tmp_path), load_actor("tiny-random"))


def test_two_ranks_under_zero3_score_the_teacher_and_train_on_it(any_redis_url, noisy_teacher, tmp_path):
    # The whole learner (`outrider learn`, 2 gloo ranks, ZeRO-3, several micro-batches per
    # rank): the teacher is loaded and sharded, its log-probs gathered across ranks.
    prefix = f"distill-{time.monotonic_ns()}"
    produce_groups(any_redis_url, prefix, learnable_groups(4, prefix="distill"))
    run_dir = tmp_path / "run"
    learner = {
        "max_steps": 2,
        "engine": {"zero_stage": 3, "micro_batch_tokens": 64},
        "algorithm": {"distillation": {"teacher": str(noisy_teacher), "placement": "loss", "rl_coef": 0.0}, "scoring_pass": "always"},
    }
    finish(learn_process(write_run_config(tmp_path / "run.yaml", run_dir, any_redis_url, prefix, learner)))
    steps = {m["step"]: m for m in metrics(run_dir)}
    # Step 1 scores the initial weights: the token mean of d over the batch.
    student = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random"), dtype=torch.float32).eval()
    teacher = AutoModelForCausalLM.from_pretrained(noisy_teacher, dtype=torch.float32).eval()
    assert steps[1]["distill_reverse_kl"] == pytest.approx(float(_gaps(student, teacher).mean()), rel=1e-5)
    assert steps[2]["actor/loss"] < steps[1]["actor/loss"]

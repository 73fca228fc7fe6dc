"""The learner's exact shortcuts change nothing (single rank, real DeepSpeed, tiny model).

* Skipping the separate π_old scoring pass (one epoch, one mini-batch): the update,
  the loss, the entropy and kl_ref equal those of a run with the pass.
* Logits only from the first trained position (``logits_to_keep``): log-probabilities
  and entropies equal a direct full forward pass with transformers.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from outrider.config import parse_config
from outrider.learner.algorithms import Algorithms
from outrider.learner.batch import build_batch
from outrider.learner.engine import frozen_module, init_distributed, trainable_engine
from outrider.learner.models import load_actor, load_reference, token_logprobs
from outrider.learner.step import Models, StepPlan, learner_step, needs_old_logprobs
from outrider.models import resolve_model
from testkit.learner import learnable_groups

pytestmark = pytest.mark.slow

ALGORITHMS = {
    "grpo-ppo_clip": {"aggregation": {"name": "seq_mean_token_mean"}},
    "entropy-controls": {
        "entropy_coef": 0.01,
        "transforms": [{"name": "forking_tokens"}, {"name": "entropy_advantage"}],
    },
    "kl-in-loss": {"kl": {"placement": "loss", "controller": {"name": "fixed", "params": {"kl_coef": 0.1}}}},
}


def groups_with_varied_lengths():
    groups = learnable_groups(2, per_group=4)
    traj = groups[1].trajectories[0]
    del traj.token_ids[-3:], traj.logprobs[-3:], traj.loss_mask[-3:]
    traj.turns[0].completion_length -= 3
    return groups


def one_step(cfg, batch, scoring_pass: str):
    torch.manual_seed(0)
    engine = trainable_engine(load_actor("tiny-random"), cfg.engine, cfg.optimizer)
    algos = Algorithms.from_config(cfg.algorithm)
    reference = frozen_module(load_reference("tiny-random"), cfg.engine) if algos.uses_kl else None
    before = {n: p.detach().clone() for n, p in engine.module.named_parameters()}
    plan = StepPlan(rank=0, world_size=1, token_budget=24, mini_batches=1, epochs=1, seed=0, step=0, scoring_pass=scoring_pass)
    forwards = []  # the actor's forward passes, counted at its embedding layer (every path runs it)
    hook = engine.module.get_input_embeddings().register_forward_hook(lambda *_: forwards.append(1))
    metrics = learner_step(Models(actor=engine, reference=reference), algos, batch, 0.1, plan)
    hook.remove()
    delta = {n: p.detach() - before[n] for n, p in engine.module.named_parameters()}
    metrics["actor_forwards"] = len(forwards)
    return delta, metrics


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_skipping_the_redundant_scoring_pass_gives_the_same_update(name):
    init_distributed("gloo")
    # AdamW's first step with eps far above |g| is ≈ lr·g/eps: equal updates mean equal gradients.
    cfg = parse_config(
        {"learner": {"optimizer": {"lr": 1.0, "eps": 1e3, "grad_clip": None}, "algorithm": ALGORITHMS[name]}}
    ).learner
    algos = Algorithms.from_config(cfg.algorithm)
    assert not needs_old_logprobs(algos, mini_batch_count=1, epochs=1), "this config must take the fused path"
    batch = build_batch(groups_with_varied_lengths())
    separate, separate_metrics = one_step(cfg, batch, "always")
    fused, fused_metrics = one_step(cfg, batch, "auto")
    # The fused path skips the actor's scoring pass: one forward per micro-batch (the update's)
    # instead of two. Counted, not timed: a timing comparison flaked on a loaded machine.
    assert separate_metrics["actor_forwards"] == 2 * fused_metrics["actor_forwards"] > 0, (separate_metrics["actor_forwards"], fused_metrics["actor_forwards"])
    norm = torch.sqrt(sum((d**2).sum() for d in separate.values()))
    assert norm > 0, "the step changed the weights"
    difference = torch.sqrt(sum(((separate[n] - fused[n]) ** 2).sum() for n in separate))
    assert difference / norm < 1e-6, float(difference / norm)
    for key in ("actor/loss", "entropy", "actor/entropy", "actor/ratio_mean"):
        if key in separate_metrics:
            # float32 metrics: the entropy (≈ 8.3 nats here) differs in its last ulp or so
            # between the two summation orders, so relative to 1e-6 (≈ 8 ulps), not absolute.
            assert fused_metrics[key] == pytest.approx(separate_metrics[key], rel=1e-6, abs=1e-7), key
    if "kl_ref" in separate_metrics:
        assert fused_metrics["kl_ref"] == pytest.approx(separate_metrics["kl_ref"], abs=1e-7)


def test_the_scoring_pass_runs_where_it_is_needed():
    cfg = parse_config({"learner": {}}).learner
    algos = Algorithms.from_config(cfg.algorithm)
    assert needs_old_logprobs(algos, mini_batch_count=2, epochs=1)
    assert needs_old_logprobs(algos, mini_batch_count=1, epochs=2)
    in_reward = parse_config({"learner": {"algorithm": {"kl": {"placement": "reward"}}}}).learner
    assert needs_old_logprobs(Algorithms.from_config(in_reward.algorithm), mini_batch_count=1, epochs=1)


def test_logits_from_the_first_trained_position_match_a_full_forward():
    groups = groups_with_varied_lengths()
    batch = build_batch(groups)
    assert batch.mask[:, 0].sum() == 0, "the prompt is untrained: the shortcut has positions to skip"
    torch.manual_seed(0)
    model = load_actor("tiny-random")
    logprobs, entropy = token_logprobs(model, batch, with_entropy=True)
    # Independent: the whole sequence through transformers, log_softmax by hand.
    reference = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random"), dtype=torch.float32).eval()
    with torch.no_grad():
        logits = reference(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1].double()
    log_p = torch.log_softmax(logits, -1)
    expected = log_p.gather(-1, batch.targets[..., None])[..., 0]
    expected_entropy = -(log_p.exp() * log_p).sum(-1)
    mask = batch.mask.bool()
    torch.testing.assert_close(logprobs.double()[mask], expected[mask], rtol=0, atol=1e-5)
    torch.testing.assert_close(entropy.double()[mask], expected_entropy[mask], rtol=0, atol=1e-5)
    first = int(mask.any(0).nonzero()[0, 0])
    assert torch.equal(logprobs[:, :first], torch.zeros_like(logprobs[:, :first]))


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_packed_suffixes_give_the_same_update_as_padded_ones(name, monkeypatch):
    # The packed suffix pass (outrider.learner.forward) against the padded one, on the same
    # micro-batch plan: the same gradients to 1e-6. Then the default, which also cuts the
    # micro-batches by real tokens: another plan, so float32 sums in another order (~1e-5,
    # the bound of test_learner_microbatch.py for two token budgets).
    import outrider.learner.forward as forward
    import outrider.learner.step as step

    init_distributed("gloo")
    cfg = parse_config(
        {"learner": {"optimizer": {"lr": 1.0, "eps": 1e3, "grad_clip": None}, "algorithm": ALGORITHMS[name]}}
    ).learner
    batch = build_batch(groups_with_varied_lengths())
    assert forward.supports_packed_suffix(load_actor("tiny-random"), int(batch.lengths.max()))
    default, default_metrics = one_step(cfg, batch, "auto")
    monkeypatch.setattr(step, "packs_without_padding", lambda *_: False)
    packed, packed_metrics = one_step(cfg, batch, "auto")  # packed forward, padded plan
    monkeypatch.setattr(forward, "supports_packed_suffix", lambda *_: False)
    padded, padded_metrics = one_step(cfg, batch, "auto")

    def relative(a, b):
        norm = torch.sqrt(sum((d**2).sum() for d in b.values()))
        assert norm > 0, "the step changed the weights"
        return float(torch.sqrt(sum(((a[n] - b[n]) ** 2).sum() for n in b)) / norm)

    assert relative(packed, padded) < 1e-6
    for key in ("actor/loss", "entropy", "actor/ratio_mean"):
        if key in padded_metrics:
            assert packed_metrics[key] == pytest.approx(padded_metrics[key], rel=1e-6, abs=1e-7), key
    if name == "entropy-controls":
        # forking_tokens keeps the top 20% entropies of each micro-batch it is applied to
        # (learner/step.py applies the transforms per micro-batch), so another plan keeps
        # other tokens: plan-dependent by construction, not a rounding difference.
        return
    assert relative(default, padded) < 5e-5
    for key in ("actor/loss", "entropy", "actor/ratio_mean"):
        if key in padded_metrics:
            assert default_metrics[key] == pytest.approx(padded_metrics[key], rel=1e-5, abs=1e-6), key

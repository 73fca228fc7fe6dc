"""One learner step: score the batch, compute advantages, update actor and critic.

Data parallelism: every rank holds the whole step's batch (it is small: token
ids and scalars) but runs the models only on its shard of sequences. Scores
(π_old and reference log-probabilities, entropies, values) are gathered so
that every rank computes the same advantages over the whole batch — group
statistics (GRPO) and batch normalisation (REINFORCE++) need all of it.

Loss scale: each micro-batch's loss is aggregated with the *whole* mini-batch's
token and sequence counts and multiplied by the world size, because DeepSpeed
averages gradients over ranks; the summed gradient then equals that of the
mini-batch loss computed at once.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist
from torch import Tensor, nn

from outrider.learner.algorithms import Algorithms
from outrider.learner.algos import (
    AdvantageInputs,
    AdvantageOutputs,
    AggregationInputs,
    KLInputs,
    PolicyLossInputs,
    RewardShapingInputs,
    ValueLossInputs,
    covariance_stats,
    distilled_advantages,
    distilled_loss,
    estimate_on_rows,
    kl_loss_term,
    kl_reward_penalty,
    masked_mean,
    ratio_metrics,
    shape_on_rows,
    trainable_rows,
    value_loss,
)
from outrider.learner.batch import SequenceBatch, plan_micro_batches
from outrider.learner.forward import supports_packed_suffix, supports_shared_prefix
from outrider.learner.models import token_logprobs, token_values


@dataclass
class Models:
    actor: nn.Module
    """The actor's DeepSpeed engine."""
    reference: nn.Module | None = None
    critic: nn.Module | None = None
    """The critic's DeepSpeed engine."""
    teacher: nn.Module | None = None
    """The frozen teacher of on-policy distillation (`algorithm.distillation.teacher`)."""


@dataclass(frozen=True)
class StepPlan:
    rank: int
    world_size: int
    token_budget: int
    mini_batches: int
    epochs: int
    seed: int
    step: int
    scoring_pass: str = "auto"
    """`always`: score π_old in a pass of its own even where it is redundant."""
    policy_version: int = 0
    """Version V of the weights before the step (π_old): a token's rollout lag is V − v_t."""


@dataclass
class Scores:
    """Whole-batch tensors computed before any update. Shape: (B, T).

    ``old_logprobs`` and ``entropy`` are None when the scoring pass is redundant
    (:func:`needs_old_logprobs`): the update's own forward then provides both.
    """

    old_logprobs: Tensor | None = None
    entropy: Tensor | None = None
    ref_logprobs: Tensor | None = None
    values: Tensor | None = None
    teacher_logprobs: Tensor | None = None


def needs_old_logprobs(algos: Algorithms, mini_batch_count: int, epochs: int) -> bool:
    """Whether π_old must be scored in a pass of its own, before any update.

    With one epoch over one mini-batch the optimizer steps once, after every
    micro-batch's backward: each forward of the update runs the very weights that
    sampled-then-scored the batch would, so π_old = π_θ.detach() exactly and the
    entropies come from the same forward. A second pass is needed only when an
    optimizer step happens before some micro-batch's forward (several mini-batches
    or epochs), or when the advantages need log π_old (a KL penalty in the reward, or
    distillation placed in the advantages).
    """
    return mini_batch_count > 1 or epochs > 1 or algos.kl_placement.in_reward or algos.distillation.placement.in_advantage


class MetricSums:
    """Metrics of one step across micro-batches and ranks: token-weighted means, and totals."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.weights: dict[str, float] = defaultdict(float)
        self.totals: dict[str, float] = defaultdict(float)

    def mean(self, metrics: dict[str, Tensor], weight: float, prefix: str = "") -> None:
        for name, value in metrics.items():
            self.sums[prefix + name] += float(value) * weight
            self.weights[prefix + name] += weight

    def total(self, name: str, value: float) -> None:
        self.totals[name] += float(value)

    def reduced(self) -> tuple[dict[str, float], dict[str, float]]:
        """(weighted means, totals) over all ranks; a collective call."""
        mine = (dict(self.sums), dict(self.weights), dict(self.totals))
        parts = [mine]
        if dist.is_initialized() and dist.get_world_size() > 1:
            parts = [None] * dist.get_world_size()
            dist.all_gather_object(parts, mine)
        sums: dict[str, float] = defaultdict(float)
        weights: dict[str, float] = defaultdict(float)
        totals: dict[str, float] = defaultdict(float)
        for part_sums, part_weights, part_totals in parts:
            for name, value in part_sums.items():
                sums[name] += value
                weights[name] += part_weights[name]
            for name, value in part_totals.items():
                totals[name] += value
        means = {name: sums[name] / weights[name] for name in sorted(sums) if weights[name] > 0}
        return means, dict(totals)


def _generator(plan: StepPlan, *salt: int) -> torch.Generator:
    digest = hashlib.sha256(repr((plan.seed, plan.step, plan.rank, *salt)).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def split_mini_batches(batch: SequenceBatch, count: int) -> list[list[int]]:
    """Whole groups in order, cut into `count` near-equal runs (a group never straddles two)."""
    groups: dict[int, list[int]] = defaultdict(list)
    for row, group in enumerate(batch.group_index.tolist()):
        groups[group].append(row)
    ordered = [groups[g] for g in sorted(groups)]
    count = min(count, len(ordered))
    return [[row for group in ordered[i::count] for row in group] for i in range(count)]


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def _micro(batch: SequenceBatch, rows: list[int], device: torch.device) -> tuple[SequenceBatch, bool]:
    """The micro-batch of `rows`; an empty plan slot becomes a 1-sequence stand-in
    whose loss is multiplied by 0 (ZeRO-3 needs every rank in every pass)."""
    if rows:
        return batch.select(rows).to(device), True
    return batch.select([0]).to(device), False


@torch.no_grad()
def score(
    models: Models, algos: Algorithms, batch: SequenceBatch, plans: list, plan: StepPlan, old_logprobs: bool = True
) -> Scores:
    """π_old log-probs and entropies (if ``old_logprobs``), reference and teacher log-probs
    and values for the whole batch; no pass at all when none of them is wanted."""
    b, t = batch.mask.shape
    wanted = {"old_logprobs", "entropy"} if old_logprobs else set()
    if algos.uses_kl and models.reference is not None:
        wanted.add("ref_logprobs")
    if models.critic is not None:
        wanted.add("values")
    if models.teacher is not None:
        wanted.add("teacher_logprobs")
    if not wanted:
        return Scores()
    mine: dict[str, list[tuple[list[int], Tensor]]] = defaultdict(list)
    device = _device(models.actor)
    for rank_plans in plans:
        for rows in rank_plans[plan.rank]:
            mb, real = _micro(batch, rows, device)
            results = {}
            if old_logprobs:
                logprobs, entropy = token_logprobs(models.actor, mb, with_entropy=True)
                results = {"old_logprobs": logprobs, "entropy": entropy}
            if "ref_logprobs" in wanted:
                results["ref_logprobs"] = token_logprobs(models.reference, mb, sampled_support=False)[0]
            if "values" in wanted:
                results["values"] = token_values(models.critic, mb)
            if "teacher_logprobs" in wanted:
                results["teacher_logprobs"] = token_logprobs(models.teacher, mb, sampled_support=False)[0]
            if real:
                for name, value in results.items():
                    mine[name].append((rows, value.float().cpu()))
    gathered = [dict(mine)]
    if plan.world_size > 1:
        gathered = [None] * plan.world_size
        dist.all_gather_object(gathered, dict(mine))
    full = {name: torch.zeros(b, t) for name in wanted}
    for part in gathered:
        for name, pieces in part.items():
            for rows, value in pieces:
                full[name][rows, : value.shape[1]] = value
    mask = batch.mask
    return Scores(**{name: value * mask for name, value in full.items()})


def advantages(
    algos: Algorithms, batch: SequenceBatch, scores: Scores, kl_coef: float, step: int = 0, keep: Tensor | None = None
) -> tuple[AdvantageOutputs, dict[str, float]]:
    """Advantages and returns over the whole batch (identical on every rank).

    Only the rows in ``keep`` (default: the valid episodes of groups with at least
    ``min_valid`` of them) take part: reward shapings and the estimator run as if the
    others were not there, and those get advantage 0.
    """
    if keep is None:
        keep = trainable_rows(batch.valid, batch.group_index, algos.min_valid)
    # Dense rewards only when there are any: estimators defined on outcome
    # rewards alone (objective_weights) refuse token rewards.
    token_rewards = batch.token_rewards if bool(batch.step_mask.any()) else None
    metrics: dict[str, float] = {}
    # Without a scoring pass (π_old = π_θ) the update measures kl_ref from its own forward.
    if scores.ref_logprobs is not None and scores.old_logprobs is not None:
        kl = algos.kl_estimator(KLInputs(logprobs=scores.old_logprobs, ref_logprobs=scores.ref_logprobs))
        metrics["kl_ref"] = float(masked_mean(kl, batch.mask))
        if algos.kl_placement.in_reward:
            penalty = kl_reward_penalty(kl, kl_coef, algos.kl_placement) * batch.mask
            token_rewards = penalty if token_rewards is None else token_rewards + penalty
    rewards = batch.rewards
    if algos.reward_shapings:
        shaping = RewardShapingInputs(rewards, batch.mask.sum(-1), batch.correct, batch.group_index, step)
        for shape in algos.reward_shapings:
            shaping = replace(shaping, rewards=shape_on_rows(shape, shaping, keep))
        rewards = shaping.rewards
        if bool(keep.any()):
            metrics["reward_shaped_mean"] = float(rewards[keep].mean())
    inputs = AdvantageInputs(
        rewards=rewards,
        mask=batch.mask,
        group_index=batch.group_index,
        values=scores.values,
        token_rewards=token_rewards,
        step_mask=batch.step_mask,
    )
    out = estimate_on_rows(algos.advantage, inputs, keep)
    policy = batch.mask.bool() & keep[:, None]
    distill = algos.distillation
    if scores.teacher_logprobs is not None and scores.old_logprobs is not None:
        # d_t = log π_old(y_t) − log π_T(y_t): the per-token reverse KL to the teacher on sampled tokens.
        metrics["distill_reverse_kl"] = float(masked_mean(scores.old_logprobs - scores.teacher_logprobs, policy))
        if distill.placement.in_advantage:
            mixed = distilled_advantages(
                out.advantages, scores.old_logprobs, scores.teacher_logprobs, policy, distill.coef, distill.rl_coef
            )
            out = replace(out, advantages=mixed)
    if policy.any():
        values = out.advantages[policy]
        metrics |= {
            "advantage_mean": float(values.mean()),
            "advantage_std": float(values.std(unbiased=False)),
            "advantage_min": float(values.min()),
            "advantage_max": float(values.max()),
        }
    return out, metrics


def _counts(batch: SequenceBatch, rows: list[int]) -> tuple[float, float, float]:
    """Tokens, sequences and padded target length of the mini-batch `rows`."""
    mask = batch.mask[rows]
    length = float(batch.lengths[rows].max()) - 1
    return float(mask.sum().clamp(min=1)), float(mask.bool().any(-1).sum().clamp(min=1)), length


def update_actor(
    models: Models,
    algos: Algorithms,
    batch: SequenceBatch,
    scores: Scores,
    adv: AdvantageOutputs,
    rows: list[int],
    rank_plan: list[list[int]],
    kl_coef: float,
    plan: StepPlan,
    epoch: int,
    salt: int,
    metrics: MetricSums,
    penalty_coef: float | None = None,
) -> None:
    """Backward over this rank's micro-batches of one mini-batch, then one optimizer step."""
    actor = models.actor
    device = _device(actor)
    num_tokens, num_sequences, max_length = _counts(batch, rows)
    for index, micro_rows in enumerate(rank_plan):
        mb, real = _micro(batch, micro_rows, device)
        take = micro_rows or [0]
        t = mb.mask.shape[1]

        def part(tensor: Tensor) -> Tensor:
            return tensor[take, :t].to(device)

        fused = scores.old_logprobs is None
        logprobs, entropy = token_logprobs(
            actor, mb, with_entropy=fused or algos.entropy_coef > 0, entropy_grad=algos.entropy_coef > 0
        )
        old_logprobs = logprobs.detach() if fused else part(scores.old_logprobs)
        token_entropy = entropy.detach() if fused else part(scores.entropy)
        inputs = PolicyLossInputs(
            logprobs=logprobs,
            old_logprobs=old_logprobs,
            advantages=part(adv.advantages),
            mask=mb.mask,
            entropy=entropy if entropy is not None else token_entropy,
            rollout_logprobs=mb.rollout_logprobs,
            rollout_lags=mb.rollout_lags(plan.policy_version),
            generator=_generator(plan, salt, index),
            penalty_coef=penalty_coef,
        )
        mb_metrics: dict[str, Tensor] = {}
        for transform in algos.transforms:
            transformed = transform(inputs)
            inputs = transformed.inputs
            mb_metrics |= transformed.metrics
        out = algos.policy_loss(inputs)
        token_loss = out.loss
        mb_metrics |= out.metrics
        distill = algos.distillation
        if distill.placement.in_loss:
            teacher = part(scores.teacher_logprobs)
            kl = distill.estimator(KLInputs(logprobs=logprobs, ref_logprobs=teacher, sampling_logprobs=inputs.old_logprobs))
            token_loss = distilled_loss(token_loss, kl, inputs.mask, distill.coef, distill.rl_coef)
            mb_metrics["distill_loss"] = masked_mean(kl.detach(), mb.mask)
            if fused and real:
                reverse_kl = masked_mean(logprobs.detach() - teacher, mb.mask)
                metrics.mean({"distill_reverse_kl": reverse_kl}, float(mb.mask.sum()))
        if algos.kl_placement.in_loss and scores.ref_logprobs is not None:
            kl = algos.kl_estimator(
                KLInputs(logprobs=logprobs, ref_logprobs=part(scores.ref_logprobs), sampling_logprobs=inputs.old_logprobs)
            )
            token_loss = token_loss + kl_loss_term(kl, kl_coef, algos.kl_placement) * mb.mask
            mb_metrics["kl_loss"] = masked_mean(kl.detach(), mb.mask)
            if fused and real:
                metrics.mean({"kl_ref": mb_metrics["kl_loss"]}, float(mb.mask.sum()))
        if algos.entropy_coef > 0:
            token_loss = token_loss - algos.entropy_coef * entropy * mb.mask
        aggregate = AggregationInputs(
            token_loss, inputs.mask, num_tokens=num_tokens, num_sequences=num_sequences, max_length=max_length
        )
        loss = algos.aggregation(aggregate) * plan.world_size
        if not real:
            loss = loss * 0.0
        actor.backward(loss, scale_wrt_gas=False)
        if real:
            with torch.no_grad():
                mb_metrics |= ratio_metrics(logprobs.detach() - inputs.old_logprobs, mb.mask)
                mb_metrics["entropy"] = masked_mean(token_entropy, mb.mask)
                # Cov(log π, A) over the micro-batch's tokens, the statistic Clip-Cov/KL-Cov act on
                # (Cui et al. 2505.22617), with the advantages before any transform so that arms
                # with different transforms report the same quantity.
                mb_metrics["logp_adv_cov"] = covariance_stats(logprobs.detach(), part(adv.advantages), mb.mask)["cov_mean"]
            # `loss` is this rank's share times the world size; the shares add up to the mini-batch loss.
            metrics.total("actor/loss", loss.detach() / plan.world_size)
            metrics.total(f"actor/loss_epoch{epoch}", loss.detach() / plan.world_size)
            metrics.mean(mb_metrics, float(mb.mask.sum()), "actor/")
    actor.step()


def update_critic(
    models: Models,
    algos: Algorithms,
    batch: SequenceBatch,
    scores: Scores,
    adv: AdvantageOutputs,
    rows: list[int],
    rank_plan: list[list[int]],
    plan: StepPlan,
    metrics: MetricSums,
) -> None:
    critic = models.critic
    device = _device(critic)
    num_tokens, _, _ = _counts(batch, rows)
    for micro_rows in rank_plan:
        mb, real = _micro(batch, micro_rows, device)
        take = micro_rows or [0]
        t = mb.mask.shape[1]
        values = token_values(critic, mb)
        inputs = ValueLossInputs(
            values=values,
            old_values=scores.values[take, :t].to(device),
            returns=adv.returns[take, :t].to(device),
            mask=mb.mask,
        )
        out = value_loss(inputs, algos.value_loss)
        loss = out.loss.sum() / num_tokens * plan.world_size
        if not real:
            loss = loss * 0.0
        critic.backward(loss, scale_wrt_gas=False)
        if real:
            metrics.total("critic/loss", loss.detach() / plan.world_size)
            metrics.mean(out.metrics, float(mb.mask.sum()), "critic/")
    critic.step()


def packs_without_padding(models: Models, longest: int) -> bool:
    """Whether every forward of the step computes real tokens only (the packed pass of
    outrider.learner.forward), so that micro-batches are cut by real tokens, not padded size.
    A critic's value forward pads."""
    forwards = [m for m in (models.actor, models.reference, models.teacher) if m is not None]
    if models.critic is not None:
        return False
    return all(supports_shared_prefix(m) and supports_packed_suffix(getattr(m, "module", m), longest) for m in forwards)


def learner_step(
    models: Models,
    algos: Algorithms,
    batch: SequenceBatch,
    kl_coef: float,
    plan: StepPlan,
    penalty_coef: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Run one learner step on `batch` (every rank passes the same batch); return metrics.

    `penalty_coef`: β of a policy loss with an adaptive penalty (`ppo_kl`), else None.
    `progress`: called with what the step does next ("scoring pass", "epoch 1/2, mini-batch
    2/4"). A PPO update on a small machine runs for minutes; the learner loop shows these
    words and counts each as progress for its watchdog, which so bounds one mini-batch
    rather than the whole update.
    """
    progress = progress or (lambda _: None)
    if algos.distillation.placement.uses_teacher and models.teacher is None:
        raise ValueError("algorithm.distillation has a teacher, but no teacher model was loaded (Models.teacher)")
    # Infra-failed episodes, and groups left with fewer than min_valid valid ones, are not
    # trained on: no forward pass, no loss weight, no part in any statistic.
    keep = trainable_rows(batch.valid, batch.group_index, algos.min_valid)
    if not bool(keep.any()):
        raise ValueError(f"no trainable sequence: every episode failed or its group has fewer than min_valid={algos.min_valid} valid ones")
    if not bool(keep.all()):
        batch = batch.only_rows(keep)
    lengths = batch.lengths.tolist()
    kept = set(keep.nonzero().squeeze(-1).tolist())
    mini = [rows for part in split_mini_batches(batch, plan.mini_batches) if (rows := [r for r in part if r in kept])]
    # A turn sampled over a truncated support takes the plain (padded) forward (models.token_logprobs).
    padded = batch.sampling is not None or not packs_without_padding(models, max(lengths))
    plans = [plan_micro_batches(rows, lengths, plan.world_size, plan.token_budget, padded) for rows in mini]
    started = time.perf_counter()
    separate = plan.scoring_pass == "always" or needs_old_logprobs(algos, len(mini), plan.epochs)
    progress("scoring pass")
    scores = score(models, algos, batch, plans, plan, old_logprobs=separate)
    scored = time.perf_counter()
    adv, adv_metrics = advantages(algos, batch, scores, kl_coef, plan.step, keep)
    sums = MetricSums()
    for epoch in range(plan.epochs):
        for m, (rows, rank_plans) in enumerate(zip(mini, plans)):
            progress(f"epoch {epoch + 1}/{plan.epochs}, mini-batch {m + 1}/{len(mini)}")
            salt = epoch * len(mini) + m
            update_actor(
                models, algos, batch, scores, adv, rows, rank_plans[plan.rank], kl_coef, plan, epoch, salt, sums, penalty_coef
            )
            if models.critic is not None:
                update_critic(models, algos, batch, scores, adv, rows, rank_plans[plan.rank], plan, sums)
    updated = time.perf_counter()
    metrics, totals = sums.reduced()
    metrics["time/score_seconds"] = scored - started
    metrics["time/update_seconds"] = updated - scored
    # Each optimizer step's loss is a total over micro-batches and ranks; report their mean.
    optimizer_steps = plan.epochs * len(mini)
    for name, value in totals.items():
        # Per-epoch losses average over that epoch's mini-batches only.
        metrics[name] = value / (len(mini) if "_epoch" in name else optimizer_steps)
    metrics |= adv_metrics
    metrics["infra_failed_episodes"] = float((~batch.valid).sum())
    metrics["trained_sequences"] = float(keep.sum())
    grad_norm = models.actor.get_global_grad_norm()
    if grad_norm is not None:
        metrics["actor/grad_norm"] = float(grad_norm)
    # One source for the step's entropy: the scoring pass, else the update's forward.
    metrics["entropy"] = float(masked_mean(scores.entropy, batch.mask)) if scores.entropy is not None else metrics["actor/entropy"]
    return metrics


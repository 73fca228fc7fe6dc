"""Config of rollouts (Celery workers playing episodes) and of evaluation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from outrider.config.base import ConfigModel


class SamplingConfig(ConfigModel):
    temperature: float = Field(1.0, ge=0.0, le=10.0)
    """Sampling temperature of rollouts (0: greedy)."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    """Nucleus sampling mass."""
    top_k: int = Field(0, ge=0)
    """Keep the k most likely tokens (0: off)."""
    max_tokens: int = Field(256, ge=1, le=65536)
    """New tokens per policy turn."""


class RewardSourceConfig(ConfigModel):
    outcome: Literal["env", "reward-service"] = "env"
    """Outcome reward from the environment's own step rewards, or from the reward
    service's verifiers (Score) for the final answer."""
    steps: Literal["none", "env", "prm"] = "none"
    """Step rewards: none; the environment's process signals (StepInfo.process_score);
    or the reward service's process reward model (ScoreSteps, one step per turn)."""
    shaping: Literal["difference", "raw"] = "difference"
    """How env process signals s_t become step rewards: r_t = s_t − s_{t−1} (telescopes
    to s_T), or r_t = s_t. (PRM rewards come shaped by the reward service.)"""
    step_weight: float = Field(1.0, ge=0.0, le=100.0)
    """Multiplier of the step rewards relative to the outcome reward."""
    turn_penalty: float = Field(0.0, ge=0.0, le=10.0)
    """Subtracted from the outcome reward for every turn after the first: solving
    sooner is better."""


class PartialRolloutConfig(ConfigModel):
    """Partial rollouts (Kimi k1.5, 2501.12599 §2.6.2; docs/rollout.md): long completions are
    generated a segment at a time across learner steps instead of holding up a whole step."""

    segment_tokens: int | None = Field(None, ge=1, le=65536)
    """New tokens per Generate call of a training rollout; a completion cut there (its turn's
    own `sampling.max_tokens` not used up) is parked with its group and continued by a later
    rollout on newer weights, each segment recording the version that sampled it. null: off."""
    max_parks: int = Field(2, ge=1, le=64)
    """Times a group may be parked; after that its cut completions go on at once (later
    segments on whatever version serves them). A group parked k times is at least k versions
    old when trained: keep k within `learner.max_policy_lag`."""
    max_parked: int | None = Field(None, ge=1, le=100_000)
    """Groups parked at once (all workers together); a group cut while the park is full goes on
    at once. null: `learner.groups_per_step`. Bounds the work waiting in Redis, and keeps a step
    that cuts every group from parking them all (the learner would wait for ever)."""

    @property
    def enabled(self) -> bool:
        return self.segment_tokens is not None


class RepetitionConfig(ConfigModel):
    """Repetition early stop (docs/rollout.md): an episode whose completion repeats an n-gram of
    token ids too often is stopped and flagged (Trajectory.repetition)."""

    ngram: int = Field(8, ge=1, le=256)
    """n: length of the token-id n-grams counted in each turn's completion."""
    max_repeats: int = Field(4, ge=1, le=10_000)
    """An n-gram may occur this many times in one completion; one more stops the episode."""
    reward: float | None = Field(None, ge=-100.0, le=100.0)
    """Outcome reward of a stopped episode, replacing the environment's or verifiers' (a
    penalty such as −1 teaches the policy not to loop); null: scored like any other episode."""


class AgentRolloutConfig(ConfigModel):
    """Episodes of `agent` environments (docs/agents.md): programs that play themselves."""

    failure_reward: float | None = None
    """Reward of an episode whose agent program failed on its own (non-zero exit, its
    wall-clock limit): null leaves such episodes out of training like infrastructure
    failures (counted as `agent_failed`); a number trains them with it, e.g. -1 to teach
    the policy not to break the agent."""
    concurrency: int | None = Field(None, ge=1, le=1024)
    """Agent programs of one group run at once; null: the whole group."""
    run_timeout_s: float = Field(900.0, gt=0, le=86_400)
    """Deadline of one RunAgent call (above the agents' wall-clock limit)."""


class SearchConfig(ConfigModel):
    """PRM-guided search rollouts (docs/reward.md, "Search rollouts"; outrider/rollout/search.py):
    each group is one search over the steps of a single assistant turn, valued by the reward
    service's PRM; its kept trajectories are the group. Off unless `mode` is set."""

    mode: Literal["none", "beam", "mcts"] = "none"
    """`none`: plain sampled groups; `beam`: beam search over steps; `mcts`: Monte Carlo tree
    search with UCB over steps."""
    width: int = Field(4, ge=1, le=256)
    """W: beams kept (beam); trajectories kept from the tree (mcts). The group has at most W
    trajectories, so W must be at least `min_group_size`."""
    expansions: int = Field(4, ge=1, le=256)
    """E: next steps proposed per beam per depth (the first depth: W·E from the prompt, one
    Generate with n = W·E, within the policy's `limits.max_n`), or per expanded MCTS node."""
    max_steps: int = Field(8, ge=1, le=256)
    """Steps per trajectory (search depth); within the reward service's `limits.max_steps`."""
    step_tokens: int = Field(64, ge=1, le=65536)
    """New tokens per step; a step cut there is still a step (the search goes on after it)."""
    token_budget: int = Field(4096, ge=1, le=10_000_000)
    """Tokens the whole search of one group may generate (every proposal, kept or not); the
    search stops when it cannot give each next proposal a token. Compare with group_size ×
    sampling.max_tokens of plain groups."""
    ucb_c: float = Field(1.0, ge=0.0, le=100.0)
    """c of UCB(child) = Q + c·sqrt(ln N(parent) / N(child)) (mcts; 0: greedy on Q)."""
    simulations: int = Field(32, ge=1, le=100_000)
    """Simulations (selection, expansion, backup) of one MCTS search."""
    delimiter: str | None = Field(None, min_length=1)
    """Step delimiter (a stop string of the policy); null: the reward service's segmentation
    delimiter, "\n\n" if it segments by turn."""
    aggregate: Literal["last", "min", "mean"] = "last"
    """A prefix's value from its PRM step scores s_1..s_T: s_T, min_t s_t, or their mean."""

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    @model_validator(mode="after")
    def _budget_fits(self) -> SearchConfig:
        first = self.width * self.expansions if self.mode == "beam" else self.expansions
        if self.enabled and self.token_budget < first:
            raise ValueError(f"token_budget ({self.token_budget}) must allow one token to each of the first {first} proposals")
        return self


class SelfPlayConfig(ConfigModel):
    """Self-play (docs/self-play.md; outrider/rollout/selfplay.py): groups of two-seat games
    in which the trained policy (the latest weights) plays an opponent pinned to a chosen
    weights version (`GenerateRequest.policy_version`)."""

    envs: list[str] = Field(default_factory=list)
    """Two-player environments whose groups are self-play games (e.g. `nim`); empty: none."""
    opponent: Literal["latest", "fixed", "league"] = "latest"
    """The opponent's version: the latest (the trained policy against itself); `fixed_version`;
    or drawn per group from the league of recent versions the policy service keeps."""
    fixed_version: int = Field(0, ge=0)
    """The opponent's version with `opponent: fixed` (it must stay resident: policy.max_resident_versions)."""
    league_size: int = Field(4, ge=1, le=15)
    """K: the league is the K most recent versions before the latest that the policy service
    holds (PolicyInfo.resident_versions; needs policy.max_resident_versions >= K + 1)."""
    weighting: Literal["uniform", "recency"] = "uniform"
    """League draw: every member alike, or recency-weighted (weight 1/a for the version a
    updates before the latest)."""
    seed: int = Field(0, ge=0, le=2**63 - 1)
    """Seed of the league draws: a group's opponent is a pure function of (seed, group id)."""
    train_both_seats: bool = False
    """Also train the opponent seat's turns (loss mask 1): both seats are then the latest policy."""

    @model_validator(mode="after")
    def _both_seats_are_latest(self) -> SelfPlayConfig:
        if self.train_both_seats and self.opponent != "latest":
            raise ValueError(f"train_both_seats trains the opponent's turns, so the opponent must be the latest policy, not {self.opponent!r}")
        return self


class RolloutConfig(ConfigModel):
    envs: list[str] = Field(default_factory=lambda: ["math"], min_length=1)
    """Environments to train on (tasks come from the curriculum service)."""
    group_size: int = Field(8, ge=2, le=1024)
    """Episodes per task (G): the group of group-relative advantages."""
    min_group_size: int = Field(2, ge=2)
    """A group with fewer successful episodes (the others failed with an error) is not sent."""
    sampling: SamplingConfig = SamplingConfig()
    """Sampling of policy turns."""
    max_turns: int | None = Field(None, ge=1, le=1000)
    """End episodes after this many policy turns (truncated); null: the environment's own limit.
    1 turns a multi-turn environment into single-attempt tasks."""
    max_episode_tokens: int = Field(2048, ge=16)
    """Prompt plus all turns; an episode that would exceed it ends, truncated."""
    reward: RewardSourceConfig = RewardSourceConfig()
    """Where rewards come from."""
    workers: int = Field(2, ge=1, le=256)
    """Local mode: Celery worker processes started by `outrider train`."""
    groups_per_worker: int = Field(4, ge=1, le=64)
    """Groups each worker plays at once (threads in one worker process; its RPCs wait on
    the services, not the CPU). workers × groups_per_worker × group_size sequences can be
    in flight on the policy: enough to fill vLLM's batch instead of one group at a time.
    1: one group at a time in a prefork pool (Celery then also enforces task_time_limit_s)."""
    dispatch: Literal["auto", "ahead", "on_demand"] = "auto"
    """When groups are dispatched. `ahead`: keep `max_groups_ahead` groups in play or
    queued, so rollouts run while the learner trains (the best use of separate machines).
    `on_demand`: only the groups the learner is waiting for, after it has published its
    new weights (TRL-like alternation, strictly on-policy): on one machine, generation
    then does not compete with the learner for the same cores, and a weight update never
    waits for in-flight requests. `auto`: on_demand for `stack.mode: local`, ahead for
    `cluster`."""
    max_groups_ahead: int | None = Field(None, ge=1)
    """Groups dispatched but not yet trained; null: groups_per_step × max(1, max_policy_lag),
    which keeps rollouts within the learner's staleness bound."""
    task_time_limit_s: float = Field(1800.0, gt=0)
    """A rollout task running longer is killed (and retried once)."""
    stall_s: float = Field(1200.0, ge=0, le=7 * 86_400)
    """Watchdog of each rollout worker process (docs/training.md, Deadlines and watchdogs):
    while it plays a group, no service call ending (with an answer or an error) for this
    many seconds ends the process with a named error and exit status 75; its task is played
    again elsewhere (0: off). Above the longest deadline (`deadlines`, `agents.run_timeout_s`),
    since a call that waits out its deadline is still progress."""
    dispatcher_stall_s: float = Field(3600.0, ge=0, le=7 * 86_400)
    """Watchdog of the dispatcher (`outrider train`): while groups are in play, no rollout
    task finishing and nothing moving on the bus for this many seconds resends every group
    in play (a lost task comes back; the bus drops duplicates); a second such stall in a row
    stops the run with a named error (0: off). Above `task_time_limit_s`, the longest a
    task may legitimately run."""
    partial: PartialRolloutConfig = PartialRolloutConfig()
    """Partial rollouts: long completions cut at a per-call token budget and continued in a
    later step by newer weights (off unless `segment_tokens` is set)."""
    repetition: RepetitionConfig | None = None
    """Stop an episode whose completion repeats an n-gram too often; null: off."""
    agents: AgentRolloutConfig = AgentRolloutConfig()
    """Episodes of agent environments."""
    search: SearchConfig = SearchConfig()
    """PRM-guided search rollouts (beam or MCTS over steps) instead of sampled groups; off by default."""
    self_play: SelfPlayConfig = SelfPlayConfig()
    """Two-seat self-play games against a pinned opponent version (environments in `self_play.envs`)."""

    @model_validator(mode="after")
    def _self_play_envs_are_played(self) -> RolloutConfig:
        missing = [name for name in self.self_play.envs if name not in self.envs]
        if missing:
            raise ValueError(f"self_play.envs: {', '.join(missing)} not in rollout.envs ({', '.join(self.envs)}): no task of theirs would be played")
        return self

    @model_validator(mode="after")
    def _search_fits(self) -> RolloutConfig:
        if self.search.enabled:
            if self.search.width < self.min_group_size:
                raise ValueError(f"search.width ({self.search.width}) must be at least min_group_size ({self.min_group_size}): a search's group is its kept trajectories")
            if self.partial.enabled:
                raise ValueError("search rollouts are not parked: set partial.segment_tokens to null or search.mode to none")
        return self


class BoundaryConfig(ConfigModel):
    """`outrider eval`: pass@k up to large k, solvable sets, perplexity under the base model
    and token entropies of named checkpoints (docs/evaluation.md)."""

    enabled: bool = False
    """At the end of `outrider train`, compare the base model (`learner.model`) with the
    final weights this way, into RUN_DIR/eval/ (linked from the run report)."""
    samples: int | None = Field(None, ge=1, le=1024)
    """Episodes per held-out task (the n of pass@k); null: 256 when the policy runs on a
    GPU, 16 on a CPU. `outrider eval --n` overrides it."""
    tasks: int | None = Field(None, ge=1, le=100_000)
    """Held-out (test split) tasks per environment; null: `evaluation.tasks`."""
    chunk: int | None = Field(None, ge=1, le=4096)
    """Episodes of one task played together (one batched group), at most n and the policy's
    `limits.max_n` and `limits.max_prompts`; null: as many as those allow."""
    max_solutions: int = Field(32, ge=0, le=1024)
    """Correct episodes per (checkpoint, task) scored under the base model for the
    perplexity analysis (a seeded subsample when there are more)."""
    max_entropy_tokens: int = Field(256, ge=0, le=1_000_000)
    """Completion tokens per (checkpoint, task) whose full-vocabulary entropy is measured
    (a seeded subsample; 0: none). Costs one extra scoring pass over the episodes chosen;
    on vLLM about 25 ms per token with a 49k vocabulary on a CPU."""
    resamples: int = Field(1000, ge=1000, le=1_000_000)
    """Bootstrap resamples of the tasks for the confidence intervals."""
    confidence: float = Field(0.9, gt=0.0, lt=1.0)
    """Coverage of the percentile bootstrap intervals."""
    forking_quantile: float = Field(0.8, gt=0.0, lt=1.0)
    """Tokens whose entropy exceeds this quantile of the base model's token entropies count
    as high-entropy "forking" tokens (0.8: the top 20%)."""
    task_retries: int = Field(2, ge=0, le=100)
    """A (checkpoint, task) whose worker task failed is dispatched again this many times
    before the evaluation stops with its error."""
    search: Literal["none", "beam", "mcts"] = "none"
    """Best-of-search evaluation: each of the n samples of a task is the best answer of one
    PRM-guided search (this mode with `rollout.search`'s width, expansions, depth and token
    budget; the reward service's PRM values the steps), so pass@k counts searches and the
    generated tokens count every proposal. `none`: plain sampled episodes. `outrider eval
    --search` overrides it (docs/evaluation.md, "Best-of-search")."""


class EvalConfig(ConfigModel):
    enabled: bool = True
    """Measure pass@k on held-out tasks before training and after it."""
    tasks: int = Field(32, ge=1, le=100_000)
    """Held-out (test split) tasks per environment."""
    samples: int = Field(4, ge=1, le=1024)
    """Episodes per task; pass@k is estimated for every k up to this."""
    temperature: float = Field(1.0, ge=0.0, le=10.0)
    """Sampling temperature of evaluation episodes."""
    boundary: BoundaryConfig = BoundaryConfig()
    """Checkpoint comparison at large k (`outrider eval`), optionally at the end of a run."""

    @model_validator(mode="after")
    def _greedy_single(self) -> EvalConfig:
        if self.temperature == 0 and self.samples > 1:
            raise ValueError("greedy evaluation (temperature 0) gives identical samples: set samples to 1")
        return self

"""Rewards of finished episodes: outcome and per-step, from the env or the reward service.

Outcome:  env            R = Σ_t env_reward_t − turn_penalty · (turns − 1)
          reward-service R = the reward service's weighted verifiers on the last answer
Steps:    env            s_t = the env's process signal after turn t; r_t = s_t − s_{t−1}
                          (s_0 = 0, so Σ r_t = s_T) or r_t = s_t (`outrider.envs.shaping`)
          prm            the reward service's PRM, one step per assistant turn, shaped there
                          by the same rule

Repetition early stop: an episode stopped for repeating itself (Trajectory.repetition)
gets `rollout.repetition.reward` as its outcome reward when that is set (and is then not
sent to the verifiers); its step rewards are computed as for any episode.

Components: an episode scored by the reward service carries every verifier's value
(Trajectory.reward_components: name, value, weight, constraint) and, with a PRM
ensemble, `prm_disagreement` (weight 0: logged only); the learner logs each per step
and applies the constraints (docs/reward.md).

A step reward sits on the last completion token of its turn. A failed
verifier or PRM call fails the episode (with the reason, as an infrastructure
failure the learner leaves out of the group); nothing becomes 0.
"""

from __future__ import annotations

import grpc

from outrider.config.reward import PRM_DISAGREEMENT
from outrider.config.rollout import RewardSourceConfig
from outrider.envs.shaping import step_rewards
from outrider.proto.v1 import common_pb2, reward_pb2, trajectory_pb2
from outrider.proto.v1.common_pb2 import ItemStatus
from outrider.proto.v1.trajectory_pb2 import INFRA_FAILURE_REWARD_ERROR
from outrider.rollout.episodes import Episode

# The reward service states every item's status; an unset one (CODE_UNSPECIFIED) is a
# broken reply, failed like any other error — never scored as reward 0.
_OK = (ItemStatus.OK,)


def _turn_end(turn: trajectory_pb2.Turn) -> int:
    return turn.start + max(turn.completion_length, 1) - 1


def assign_rewards(
    task: common_pb2.Task,
    episodes: list[Episode],
    cfg: RewardSourceConfig,
    reward_client=None,
    repetition_reward: float | None = None,
) -> None:
    """Fill `outcome_reward` and `step_rewards` of each finished episode (or its `error`);
    `repetition_reward`: the outcome of an episode stopped for repeating itself (None: scored)."""
    finished = [e for e in episodes if not e.error and e.turns]
    penalised = [e for e in finished if e.repetition is not None and repetition_reward is not None]
    for episode in finished:
        episode.outcome_reward = sum(t.env_reward for t in episode.turns) - cfg.turn_penalty * (len(episode.turns) - 1)
    if cfg.outcome == "reward-service":
        _outcome_from_service(task, [e for e in finished if e.repetition is None or repetition_reward is None], cfg, reward_client)
    for episode in penalised:
        episode.outcome_reward = repetition_reward
    if cfg.steps == "env":
        for episode in finished:
            _env_steps(episode, cfg)
    elif cfg.steps == "prm":
        _prm_steps(task, [e for e in finished if not e.error], cfg, reward_client)


def _env_steps(episode: Episode, cfg: RewardSourceConfig) -> None:
    scored = [(turn, score) for turn, score in zip(episode.turns, episode.process_scores) if score is not None]
    rewards = step_rewards([score for _, score in scored], cfg.shaping)
    episode.step_rewards = [
        trajectory_pb2.StepReward(token_index=_turn_end(turn), score=score, reward=cfg.step_weight * reward)
        for (turn, score), reward in zip(scored, rewards)
    ]


def _last_answer(episode: Episode) -> str:
    return next((m.content for m in reversed(episode.messages) if m.role == "assistant"), "")


def _outcome_from_service(task, episodes: list[Episode], cfg: RewardSourceConfig, client) -> None:
    if not episodes:
        return
    items = [
        reward_pb2.ScoreItem(
            id=str(e.index),
            env=task.env,
            task_id=task.id,
            prompt=task.preview,
            response=_last_answer(e),
            reference=task.reference,
            response_tokens=sum(t.completion_length for t in e.turns),
            conversation=e.messages,
        )
        for e in episodes
    ]
    try:
        results = client.score(items)
    except grpc.RpcError as exc:
        for episode in episodes:
            episode.fail(INFRA_FAILURE_REWARD_ERROR, f"reward Score: {exc.code().name}: {exc.details()}")
        return
    for episode, result in zip(episodes, results, strict=True):
        if result.status.code not in _OK or not result.HasField("reward"):
            episode.fail(INFRA_FAILURE_REWARD_ERROR, f"reward {ItemStatus.Code.Name(result.status.code)}: {result.status.message}")
            continue
        episode.outcome_reward = result.reward - cfg.turn_penalty * (len(episode.turns) - 1)
        episode.reward_components.extend(
            common_pb2.RewardComponent(name=c.name, value=c.value, weight=c.weight, constraint=c.constraint if c.HasField("constraint") else None)
            for c in result.components
        )


def _prm_steps(task, episodes: list[Episode], cfg: RewardSourceConfig, client) -> None:
    if not episodes:
        return
    by_turn = reward_pb2.Segmentation(mode=reward_pb2.Segmentation.BY_TURN)
    items = [
        reward_pb2.StepsItem(id=str(e.index), env=task.env, task_id=task.id, conversation=e.messages, segmentation=by_turn)
        for e in episodes
    ]
    try:
        results = client.score_steps(items)
    except grpc.RpcError as exc:
        for episode in episodes:
            episode.fail(INFRA_FAILURE_REWARD_ERROR, f"reward ScoreSteps: {exc.code().name}: {exc.details()}")
        return
    for episode, result in zip(episodes, results, strict=True):
        if result.status.code not in _OK:
            episode.fail(INFRA_FAILURE_REWARD_ERROR, f"PRM {ItemStatus.Code.Name(result.status.code)}: {result.status.message}")
            continue
        if len(result.scores) != len(episode.turns):
            episode.fail(INFRA_FAILURE_REWARD_ERROR, f"PRM scored {len(result.scores)} steps for {len(episode.turns)} turns")
            continue
        episode.step_rewards = [
            trajectory_pb2.StepReward(token_index=_turn_end(turn), score=score, reward=cfg.step_weight * reward)
            for turn, score, reward in zip(episode.turns, result.scores, result.rewards)
        ]
        if result.HasField("disagreement"):
            episode.reward_components.append(common_pb2.RewardComponent(name=PRM_DISAGREEMENT, value=result.disagreement, weight=0.0))

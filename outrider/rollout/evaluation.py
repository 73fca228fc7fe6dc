"""One held-out task of one checkpoint: the rollout workers' part of `outrider eval`.

A worker plays `samples` episodes of the task against the policy service that
serves the checkpoint, in groups of `chunk` episodes (GroupPlayer, exactly as
the in-run evaluation of `outrider.train.evaluate` and training rollouts play
them: multi-turn, tokens in and out). It returns, as a TaskSamples message:

* the counts of pass@k: episodes without an infrastructure error (`samples`),
  solved within the episode (`correct`) and solved on the first turn (`first_try`);
  with `search` set, each "episode" is the best-of-search answer of one PRM-guided search
  (rollout/search_play.py), and `generated_tokens` counts every token the searches proposed;
* up to `max_solutions` correct episodes (a seeded subsample), as token ids and
  completion spans: the driver scores them under the base model later;
* the entropy H = −Σ_v π(v | context) log π(v | context) of the checkpoint's
  next-token distribution at up to `max_entropy_tokens` completion tokens (a
  seeded subsample), from ScoreTokens(return_entropies) on the same policy
  (within the policy's PolicyInfo.max_entropy_tokens of each episode's start,
  where it has that limit: vLLM, whose full-vocabulary pass is costly).

Subsamples draw from random.Random(f"{seed}/{checkpoint}/{task}"), so a task
re-run after a crash keeps the same choice rule.
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
from pathlib import Path

import grpc

from outrider.config.rollout import RolloutConfig
from outrider.proto.v1 import eval_pb2, trajectory_pb2
from outrider.rollout.episodes import Episode, GroupPlayer

MAX_ERROR_MESSAGES = 5


def completion_positions(turns) -> list[int]:
    """Token indices of the policy's completions (the loss-mask positions of a trajectory)."""
    return [i for turn in turns for i in range(turn.start, turn.start + turn.completion_length)]


def scored_prefix(token_ids, turns) -> int:
    """Length of the prefix that ends with the last completion token (later tokens are
    the environment's and are not scored)."""
    return max((turn.start + turn.completion_length for turn in turns), default=0)


def evaluate_task(request: eval_pb2.EvalTaskRequest, policy, env, rollout: RolloutConfig, reward=None) -> eval_pb2.TaskSamples:
    """Play the request's episodes and measure them (see the module docstring). With
    `request.search`, each episode is the best answer of one search (`reward` values its steps)."""
    task = request.task
    _log_activity(request, "start")
    started = time.perf_counter()
    if request.search:
        episodes, generated = _best_of_searches(request, policy, env, reward, rollout)
    else:
        player = GroupPlayer(policy, env, rollout)
        episodes = []
        while len(episodes) < request.samples:
            size = min(max(request.chunk, 1), request.samples - len(episodes))
            # Session seeds seed + j for the task's j-th episode: the same for every checkpoint.
            episodes += player.play(task, size=size, seed=request.seed + len(episodes))
        generated = None
    good = [e for e in episodes if not e.error]
    rng = random.Random(f"{request.seed}/{request.checkpoint}/{task.env}/{task.id}")
    correct = [e for e in good if e.solved]
    kept = sorted(rng.sample(range(len(correct)), min(request.max_solutions, len(correct))))
    result = eval_pb2.TaskSamples(
        checkpoint=request.checkpoint,
        task_id=task.id,
        env=task.env,
        samples=len(good),
        correct=len(correct),
        first_try=sum(e.solved and len(e.turns) == 1 for e in good),
        errors=len(episodes) - len(good),
        solutions=[_trajectory(correct[i]) for i in kept],
        error_messages=[f"episode {e.index}: {e.error}" for e in episodes if e.error][:MAX_ERROR_MESSAGES],
        generated_tokens=sum(t.completion_length for e in good for t in e.turns) if generated is None else generated,
    )
    if request.max_entropy_tokens:
        try:
            values, result.entropy_error = _entropies(policy, good, request.max_entropy_tokens, rng)
            result.entropies.extend(values)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
            result.entropy_error = exc.details() or "ScoreTokens cannot return entropies"
    result.seconds = time.perf_counter() - started
    _log_activity(request, "done")
    return result


def _best_of_searches(request: eval_pb2.EvalTaskRequest, policy, env, reward, rollout: RolloutConfig) -> tuple[list[Episode], int]:
    """`request.samples` searches of the task (session seeds seed + j, as for plain
    episodes), each contributing its best-of-search answer (SearchResult.best: the
    highest-valued finished trajectory) as one episode; and the tokens all searches generated."""
    from outrider.rollout.search_play import SearchPlayer

    if reward is None:
        raise ValueError("best-of-search evaluation needs the reward service (its PRM values the steps)")
    cfg = rollout.model_copy(update={"search": rollout.search.model_copy(update={"mode": request.search})})
    player = SearchPlayer(policy, env, reward, cfg)
    best: list[Episode] = []
    generated = 0
    for j in range(request.samples):
        episodes = player.play(request.task, seed=request.seed + j)
        if not player.search:  # the search failed: its one episode carries the error
            best.append(episodes[0])
            continue
        generated += player.search["generated_tokens"]
        chosen = episodes[player.search["best"]]
        chosen.index = j
        best.append(chosen)
    return best, generated


def _trajectory(episode: Episode) -> trajectory_pb2.Trajectory:
    end = scored_prefix(episode.token_ids, episode.turns)
    return trajectory_pb2.Trajectory(
        prompt_length=episode.prompt_length,
        token_ids=episode.token_ids[:end],
        turns=[trajectory_pb2.Turn(start=t.start, completion_length=t.completion_length) for t in episode.turns],
        solved=episode.solved,
    )


def _entropies(policy, episodes: list[Episode], budget: int, rng: random.Random) -> tuple[list[float], str]:
    """Entropies at up to `budget` completion tokens, and why there are none if so: whole
    episodes in a seeded order until the budget is covered (one ScoreTokens pass each;
    only the first `max_entropy_tokens` tokens where the policy has such a limit), then a
    seeded subsample of their completion tokens."""
    info = policy.info()
    limit = info.max_entropy_tokens
    order = [e for e in episodes if e.turns]
    rng.shuffle(order)
    chosen, covered = [], 0
    for episode in order:
        if covered >= budget:
            break
        end = scored_prefix(episode.token_ids, episode.turns)
        end = min(end, limit) if limit else end
        positions = [i for i in completion_positions(episode.turns) if i < end]
        if positions:
            chosen.append((episode, end, positions))
            covered += len(positions)
    if order and not chosen:
        return [], (f"no completion token lies within the first {limit} tokens of an episode, the longest sequence "
                    "the policy scores with entropies (its vllm.max_entropy_tokens)")
    values: list[float] = []
    for start in range(0, len(chosen), max(1, info.max_prompts)):
        batch = chosen[start : start + max(1, info.max_prompts)]
        reply = policy.score_tokens([(e.token_ids[:end], e.prompt_length) for e, end, _ in batch], entropies=True)
        for (episode, _, positions), scored in zip(batch, reply.sequences, strict=True):
            entropies = list(scored.entropies)
            # entropies[i] belongs to token prompt_length + i; keep the completions' tokens.
            values += [entropies[i - episode.prompt_length] for i in positions]
    if len(values) > budget:
        values = [values[i] for i in sorted(rng.sample(range(len(values)), budget))]
    return values, ""


def _log_activity(request: eval_pb2.EvalTaskRequest, event: str) -> None:
    """One JSON line per start/end of a (checkpoint, task) in the request's activity log
    (which worker sampled what, when); a single O_APPEND write keeps lines whole."""
    if not request.activity_log:
        return
    line = json.dumps({
        "event": event, "checkpoint": request.checkpoint, "env": request.task.env, "task_id": request.task.id,
        "worker": f"{socket.gethostname()}/{os.getpid()}", "time": round(time.time(), 3),
    })
    path = Path(request.activity_log)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)

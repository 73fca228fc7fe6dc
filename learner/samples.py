"""Sample episodes of a step, decoded for people: what the run report and the trackers show.

Per step, `n` episodes: the best and the worst (by outcome reward) of the first groups
in the step's order, so a reader sees what the policy gets right and wrong side by
side. The prompt is the episode's initial prompt as the policy saw it (chat template
included); the completion is everything after it — the policy's turns and the
environment's replies in between, as one transcript. Texts are cut to `max_chars`
(the prompt keeps its end, where the question is).
"""

from __future__ import annotations

from outrider.proto.v1.trajectory_pb2 import Trajectory, TrajectoryGroup


def pick_samples(groups: list[TrajectoryGroup], n: int) -> list[tuple[TrajectoryGroup, Trajectory]]:
    """Up to n (group, trajectory) pairs: best, then worst, of each group in order."""
    picked: list[tuple[TrajectoryGroup, Trajectory]] = []
    for group in groups:
        if len(picked) >= n:
            break
        ranked = sorted(group.trajectories, key=lambda t: t.outcome_reward, reverse=True)
        for trajectory in (ranked[:1] + ranked[-1:]) if len(ranked) > 1 else ranked:
            if len(picked) < n:
                picked.append((group, trajectory))
    return picked


def _cut(text: str, max_chars: int, keep_end: bool = False) -> str:
    if len(text) <= max_chars:
        return text
    return "…" + text[-(max_chars - 1):] if keep_end else text[: max_chars - 1] + "…"


def render_samples(tokenizer, groups: list[TrajectoryGroup], n: int, max_chars: int = 2000) -> list[dict]:
    """The step's sample episodes as JSON-ready dicts (decoded with the policy's tokenizer)."""
    samples = []
    for group, trajectory in pick_samples(groups, n):
        ids = list(trajectory.token_ids)
        prompt = tokenizer.decode(ids[: trajectory.prompt_length], skip_special_tokens=False)
        completion = tokenizer.decode(ids[trajectory.prompt_length:], skip_special_tokens=False)
        samples.append({
            "group_id": group.group_id,
            "task_id": group.task_id,
            "reward": trajectory.outcome_reward,
            "solved": trajectory.solved,
            "turns": len(trajectory.turns),
            "prompt": _cut(prompt, max_chars, keep_end=True),
            "completion": _cut(completion, max_chars),
        })
    return samples

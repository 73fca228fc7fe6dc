"""The offline trainers' datasets: JSONL files to tokenized examples, errors naming file and line.

Sources (docs/offline.md):

* chat JSONL — one ``{"messages": [{"role": ..., "content": ...}, ...]}`` per line (SFT);
* pair JSONL — one ``{"prompt": messages, "chosen": messages | text, "rejected": ...}``
  per line (DPO); a text response is one assistant message;
* trajectory JSONL — one ``TrajectoryGroup`` (protobuf JSON) per line: the token ids as
  sampled and their loss mask, no re-tokenization. SFT keeps the solved / well-rewarded
  episodes (rejection-sampling fine-tuning); DPO pairs each group's best episode with its
  worst;
* ``outrider eval`` samples (``EVAL_DIR/samples/*.jsonl``, TaskSamples): the correct
  episodes kept per held-out task (token ids, prompt length, turns).

A run's own trained groups are not kept on disk (the bus deletes a group when its
checkpoint commits it; rollouts.jsonl holds rewards and timings only), so "a run's
trajectories" means one of the last two forms.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import json_format

from outrider.learner.offline.render import ChatRenderer, RenderError, Tokenized
from outrider.proto.v1 import eval_pb2
from outrider.proto.v1.common_pb2 import ItemStatus
from outrider.proto.v1.trajectory_pb2 import INFRA_FAILURE_NONE, Trajectory, TrajectoryGroup


class DataError(ValueError):
    """A dataset file is unreadable or a record is malformed; the message names file and line."""


@dataclass(frozen=True)
class Pair:
    """A preference pair: the same prompt, a chosen and a rejected continuation."""

    chosen: Tokenized
    rejected: Tokenized


def read_jsonl(path: str | Path) -> Iterator[tuple[str, object]]:
    """(``"file:line"``, parsed JSON) for every non-blank line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not JSON: {exc.msg} (column {exc.colno})") from None


def parse_messages(value: object, where: str, field: str) -> list[dict]:
    """A list of {"role": str, "content": str[, "name": str]} messages, checked."""
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: {field}: expected a non-empty list of messages, got {_kind(value)}")
    messages = []
    for i, message in enumerate(value):
        at = f"{where}: {field}[{i}]"
        if not isinstance(message, dict):
            raise DataError(f"{at}: expected an object with role and content, got {_kind(message)}")
        unknown = sorted(set(message) - {"role", "content", "name"})
        if unknown:
            raise DataError(f"{at}: unknown key(s) {', '.join(unknown)} (a message has role, content and optionally name)")
        for key in ("role", "content"):
            if not isinstance(message.get(key), str):
                raise DataError(f"{at}.{key}: expected a string, got {_kind(message.get(key))}")
        if not message["role"]:
            raise DataError(f"{at}.role: empty")
        messages.append(dict(message))
    return messages


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


def _object(record: object, where: str, keys: tuple[str, ...]) -> dict:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object with {', '.join(keys)}, got {_kind(record)}")
    missing = [key for key in keys if key not in record]
    if missing:
        raise DataError(f"{where}: missing key(s) {', '.join(missing)}")
    return record


def _render(renderer: ChatRenderer, messages: list[dict], where: str, train_from: int = 0) -> Tokenized:
    try:
        tokenized = renderer.render(messages, train_from)
    except RenderError as exc:
        raise DataError(f"{where}: {exc}") from None
    if not tokenized.trained:
        raise DataError(f"{where}: no assistant message to train on")
    return tokenized


def chat_examples(path: str | Path, renderer: ChatRenderer) -> list[Tokenized]:
    """SFT examples from chat JSONL; the loss mask covers every assistant message."""
    out = []
    for where, record in read_jsonl(path):
        messages = parse_messages(_object(record, where, ("messages",))["messages"], where, "messages")
        out.append(_render(renderer, messages, where))
    return out


def _response(value: object, where: str, field: str) -> list[dict]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    return parse_messages(value, where, field)


def pair_examples(path: str | Path, renderer: ChatRenderer) -> list[Pair]:
    """DPO pairs from pair JSONL; each response's assistant messages are trained, the
    prompt's (a multi-turn history) are not."""
    out = []
    for where, record in read_jsonl(path):
        record = _object(record, where, ("prompt", "chosen", "rejected"))
        prompt = parse_messages(record["prompt"], where, "prompt")
        sides = {}
        for side in ("chosen", "rejected"):
            response = _response(record[side], where, side)
            sides[side] = _render(renderer, prompt + response, f"{where}: {side}", train_from=len(prompt))
        out.append(Pair(sides["chosen"], sides["rejected"]))
    return out


def _groups(path: str | Path) -> Iterator[tuple[str, TrajectoryGroup]]:
    for where, record in read_jsonl(path):
        try:
            yield where, json_format.ParseDict(record, TrajectoryGroup())
        except json_format.ParseError as exc:
            raise DataError(f"{where}: not a TrajectoryGroup: {exc}") from None


def _trajectory_tokens(trajectory: Trajectory, where: str) -> Tokenized:
    ids, mask = list(trajectory.token_ids), list(trajectory.loss_mask)
    if len(ids) != len(mask):
        raise DataError(f"{where}: trajectory {trajectory.trajectory_id!r}: {len(ids)} token_ids but {len(mask)} loss_mask entries")
    return Tokenized(ids, [bool(m) for m in mask])


_FINE = (ItemStatus.CODE_UNSPECIFIED, ItemStatus.OK)


def _usable(trajectory: Trajectory) -> bool:
    """Neither cut short by infrastructure nor failed (its reward then measured nothing)."""
    return trajectory.infra_failure == INFRA_FAILURE_NONE and trajectory.status.code in _FINE and any(trajectory.loss_mask)


def trajectory_examples(path: str | Path, solved_only: bool, min_reward: float | None) -> list[Tokenized]:
    """Rejection-sampling fine-tuning data: the episodes of TrajectoryGroup JSONL that were
    solved (``solved_only``) and scored at least ``min_reward``; trained on completion tokens."""
    out = []
    for where, group in _groups(path):
        for trajectory in group.trajectories:
            if not _usable(trajectory) or (solved_only and not trajectory.solved):
                continue
            if min_reward is not None and trajectory.outcome_reward < min_reward:
                continue
            out.append(_trajectory_tokens(trajectory, where))
    return out


def group_pairs(path: str | Path, min_reward_gap: float) -> list[Pair]:
    """One pair per TrajectoryGroup: its highest-reward episode (chosen) against its lowest
    (rejected), when best − worst > ``min_reward_gap``; ties go to the earlier episode."""
    out = []
    for where, group in _groups(path):
        episodes = [t for t in group.trajectories if _usable(t)]
        if len(episodes) < 2:
            continue
        best = max(episodes, key=lambda t: t.outcome_reward)
        worst = min(episodes, key=lambda t: t.outcome_reward)
        if best.outcome_reward - worst.outcome_reward > min_reward_gap:
            out.append(Pair(_trajectory_tokens(best, where), _trajectory_tokens(worst, where)))
    return out


def _completion_mask(solution: Trajectory, where: str) -> Tokenized:
    """Eval solutions keep token ids, prompt length and turns, not the loss mask: the mask
    is the turns' completion spans."""
    ids = list(solution.token_ids)
    mask = [False] * len(ids)
    for turn in solution.turns:
        end = turn.start + turn.completion_length
        if end > len(ids):
            raise DataError(f"{where}: solution {solution.trajectory_id!r}: turn ends at {end}, past its {len(ids)} tokens")
        mask[turn.start : end] = [True] * turn.completion_length
    return Tokenized(ids, mask)


def eval_sample_examples(path: str | Path) -> list[Tokenized]:
    """The correct episodes an ``outrider eval`` folder keeps (samples/*.jsonl), or one such file."""
    path = Path(path)
    files = sorted((path / "samples").glob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path}: no samples/*.jsonl (is it an `outrider eval` folder?)")
    out = []
    for file in files:
        for where, record in read_jsonl(file):
            try:
                samples = json_format.ParseDict(record, eval_pb2.TaskSamples())
            except json_format.ParseError as exc:
                raise DataError(f"{where}: not a TaskSamples record: {exc}") from None
            out += [_completion_mask(s, where) for s in samples.solutions if s.turns]
    return out

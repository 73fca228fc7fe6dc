"""Checks a run config must pass before anything starts.

Names that only mean something at run time (environments, models) are
checked here, so a typo fails in a second with the field named, not after the
services have spent a minute loading.
"""

from __future__ import annotations

from pathlib import Path

from outrider.config import ConfigError, RunConfig
from outrider.config.base import read_yaml


def _env_names(run: RunConfig) -> set[str]:
    names = set(run.env.builtin_envs)
    for path in run.env.spec_files:
        spec = read_yaml(path)
        if isinstance(spec, dict) and isinstance(spec.get("name"), str):
            names.add(spec["name"])
    return names


def _model_problem(spec: str) -> str | None:
    from outrider.models import ModelNotFound, builtin_names
    from outrider.models.hub import hub_offline, is_hub_id, resolve_hub

    if spec in builtin_names():
        return None
    folder = Path(spec).expanduser()
    if not folder.is_dir() and is_hub_id(spec):
        if not hub_offline():
            return None  # cached, or downloaded when the services start
        try:
            resolve_hub(spec, [f"a local folder {spec!r}: does not exist"])
        except ModelNotFound as exc:
            return str(exc)
        return None
    if not folder.is_dir():
        return (f"{spec!r} is neither a built-in model ({', '.join(builtin_names())}), nor an existing folder, "
                "nor a Hugging Face Hub id (owner/name[@revision])")
    if not (folder / "config.json").is_file():
        return f"{folder} has no config.json (not an HF model folder)"
    return None


def _prm_problem(spec: str) -> str | None:
    """A PRM is usually trained here (`outrider reward train`): a missing folder says how."""
    from outrider.models import builtin_names
    from outrider.models.hub import is_hub_id

    if spec in builtin_names() or Path(spec).expanduser().is_dir() or (is_hub_id(spec) and not spec.startswith(("runs/", "./"))):
        return _model_problem(spec)
    return (f"{spec!r} does not exist; train a PRM into it first: `outrider reward make-dataset --out runs/prm/data` "
            f"then `outrider reward train --data runs/prm/data/train.jsonl --eval runs/prm/data/test.jsonl --out {spec}` "
            "(docs/reward.md)")


def preflight(run: RunConfig, source: str = "<config>") -> None:
    """Raise ConfigError naming every field that cannot work."""
    problems: list[tuple[str, str]] = []
    known = _env_names(run)
    for index, env in enumerate(run.rollout.envs):
        if env not in known:
            problems.append((f"rollout.envs[{index}]", f"unknown environment {env!r}; the env service will have: {', '.join(sorted(known))}"))
    for field, spec in (("policy.model", run.policy.model), ("learner.model", run.learner.model)):
        if problem := _model_problem(spec):
            problems.append((field, problem))
    if run.policy.model != run.learner.model:
        problems.append(("learner.model", f"must be the policy's model ({run.policy.model!r}): the learner trains the weights the policy serves"))
    if not {"policy", "env"} <= set(run.stack.services):
        problems.append(("stack.services", "training needs at least the policy and env services"))
    if (run.rollout.reward.outcome == "reward-service" or run.rollout.reward.steps == "prm") and "reward" not in run.stack.services:
        problems.append(("stack.services", "the configured rewards need the reward service"))
    if run.reward.prm is not None and "reward" in run.stack.services:
        prm = run.reward.prm
        members = [("reward.prm", prm)] if prm.type != "ensemble" else [(f"reward.prm.members[{i}]", m) for i, m in enumerate(prm.members)]
        for field, member in members:
            if problem := _prm_problem(member.model):
                problems.append((f"{field}.model", problem))
    if run.learner.sync.mode == "none":
        problems.append(("learner.sync.mode", "`none` would train without ever updating the policy that samples"))
    if problems:
        raise ConfigError(source, problems)

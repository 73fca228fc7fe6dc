"""Checkpoints: DeepSpeed state of actor and critic, RNG, learner state; HF export.

Layout under `<run_dir>/checkpoints/`:

    actor/<tag>/...        DeepSpeed checkpoint (model, optimizer, scheduler)
    critic/<tag>/...       the same for the critic, when there is one
    rng/<tag>/rank<r>.pt   torch, numpy and Python RNG states of every rank
    state/<tag>.json       LearnerState
    LATEST                 the tag of the newest *complete* checkpoint

LATEST is written last (atomically), so a crash while saving leaves the
previous checkpoint in charge. A checkpoint's state lists the groups whose
updates it contains; the bus commits them only after LATEST names it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

LATEST = "LATEST"


@dataclass
class LearnerState:
    """Everything besides model/optimizer needed to continue a run exactly."""

    step: int = 0
    """Learner steps completed."""
    policy_version: int = 0
    """Version of the weights (0: the initial model; +1 per step)."""
    kl_controller: dict = field(default_factory=dict)
    """state_dict of the KL coefficient controller."""
    penalty_controller: dict = field(default_factory=dict)
    """state_dict of the policy loss's adaptive penalty coefficient (`ppo_kl`); empty otherwise."""
    multipliers: dict = field(default_factory=dict)
    """λ of each reward constraint by component name (learner/objectives.py); empty without constraints."""
    disagreement_baseline: float | None = None
    """d₀ of the KL-vs-disagreement heuristic (`algorithm.kl.disagreement_gain`); None: not yet measured."""
    trained_group_ids: list[str] = field(default_factory=list)
    """Every group whose update these weights contain, in training order."""
    uncommitted_group_ids: list[str] = field(default_factory=list)
    """Groups trained since the previous commit; committed on the bus after this checkpoint."""
    dropped_stale: int = 0
    """Groups dead-lettered for exceeding max_policy_lag."""
    dropped_uniform: int = 0
    """Groups skipped by dynamic sampling (all rewards equal)."""
    dropped_failed: int = 0
    """Groups skipped for keeping fewer than `min_valid` episodes without an infrastructure failure."""
    samples: int = 0
    """Trajectories trained on."""


def _tag(step: int) -> str:
    return f"step-{step:07d}"


def hf_export_folder(run_dir: Path, step: int) -> Path:
    """Where `learner.export_hf_every` puts the actor's weights after `step`:
    `<run_dir>/hf/<tag>`, named like that step's checkpoint; never pruned."""
    return Path(run_dir) / "hf" / _tag(step)


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def save_checkpoint(root: Path, actor, critic, state: LearnerState, keep: int) -> str:
    """Save on every rank (collective); returns the tag."""
    tag = _tag(state.step)
    actor.save_checkpoint(str(root / "actor"), tag=tag)
    if critic is not None:
        critic.save_checkpoint(str(root / "critic"), tag=tag)
    rng_dir = root / "rng" / tag
    rng_dir.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
        rng_dir / f"rank{_rank()}.pt",
    )
    _barrier()
    if _rank() == 0:
        state_dir = root / "state"
        state_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(state_dir / f"{tag}.json", json.dumps(asdict(state)))
        _atomic_write(root / LATEST, tag)
        _prune(root, keep)
    _barrier()
    return tag


def latest_tag(root: Path) -> str | None:
    try:
        return (root / LATEST).read_text().strip() or None
    except FileNotFoundError:
        return None


def read_state(root: Path, tag: str | None = None) -> LearnerState | None:
    """The LearnerState of checkpoint `tag` under `root` (default: the newest complete one),
    without loading any engine; None when there is none. The supervisor of `outrider train`
    reads how far the learner got with it."""
    root = Path(root)
    tag = tag or latest_tag(root)
    if tag is None:
        return None
    return LearnerState(**json.loads((root / "state" / f"{tag}.json").read_text()))


def load_checkpoint(root: Path, actor, critic) -> LearnerState | None:
    """Restore the newest complete checkpoint into the engines; None if there is none."""
    tag = latest_tag(root)
    if tag is None:
        return None
    path, _ = actor.load_checkpoint(str(root / "actor"), tag=tag)
    if path is None:
        raise RuntimeError(f"actor checkpoint {root / 'actor' / tag} could not be loaded")
    if critic is not None:
        path, _ = critic.load_checkpoint(str(root / "critic"), tag=tag)
        if path is None:
            raise RuntimeError(f"critic checkpoint {root / 'critic' / tag} could not be loaded")
    rng = torch.load(root / "rng" / tag / f"rank{_rank()}.pt", weights_only=False)
    torch.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
    return read_state(root, tag)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _prune(root: Path, keep: int) -> None:
    tags = sorted(p.stem for p in (root / "state").glob("step-*.json"))
    for tag in tags[:-keep]:
        for part in ("actor", "critic", "rng"):
            shutil.rmtree(root / part / tag, ignore_errors=True)
        (root / "state" / f"{tag}.json").unlink(missing_ok=True)


def full_state_dict(engine) -> dict[str, torch.Tensor] | None:
    """The whole model's weights on rank 0 (None elsewhere). Collective under ZeRO-3."""
    if engine.zero_optimization_partition_weights():
        state = engine._zero3_consolidated_16bit_state_dict()
        return state if _rank() == 0 else None
    module: nn.Module = engine.module
    return {k: v.detach().cpu() for k, v in module.state_dict().items()} if _rank() == 0 else None


# What an HF folder needs besides weights and config.json, copied from the initial model.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "generation_config.json")


def _finish_hf_folder(tmp: Path, out_dir: Path, tokenizer_from: Path) -> None:
    """Add the tokenizer files to a freshly saved folder and move it into place."""
    for name in TOKENIZER_FILES:
        source = Path(tokenizer_from) / name
        if source.exists() and not (tmp / name).exists():
            shutil.copy(source, tmp / name)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)


def export_hf(engine, out_dir: Path, tokenizer_from: Path) -> Path | None:
    """Write an HF-format folder (weights + config + tokenizer) that transformers
    and vLLM load directly. Collective; rank 0 writes."""
    state = full_state_dict(engine)
    if _rank() == 0:
        out_dir = Path(out_dir)
        tmp = out_dir.with_name(out_dir.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        engine.module.save_pretrained(tmp, state_dict=state, safe_serialization=True)
        _finish_hf_folder(tmp, out_dir, tokenizer_from)
    _barrier()
    return Path(out_dir) if _rank() == 0 else None


def checkpoint_tag(root: Path, step: int | None = None) -> str:
    """The tag of step `step` under `root` (a run's checkpoints/ folder), or of the newest
    complete checkpoint; FileNotFoundError naming what is there when there is none."""
    root = Path(root)
    tag = _tag(step) if step is not None else latest_tag(root)
    if tag is None or not (root / "actor" / tag).is_dir():
        present = sorted(p.name for p in (root / "actor").glob("step-*")) if (root / "actor").is_dir() else []
        wanted = f"step {step}" if step is not None else f"a {LATEST} checkpoint"
        raise FileNotFoundError(f"{root} has no actor checkpoint for {wanted} (present: {', '.join(present) or 'none'})")
    return tag


def actor_state_dict(root: Path, tag: str) -> dict[str, torch.Tensor]:
    """The actor's full weights in checkpoint `tag`, whatever the ZeRO stage: DeepSpeed's
    own zero_to_fp32 reassembles the fp32 partitions of stages 1-3; without ZeRO the
    model states file holds the whole module."""
    folder = Path(root) / "actor" / tag
    if any(folder.glob("*optim_states.pt")):
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        return dict(get_fp32_state_dict_from_zero_checkpoint(str(Path(root) / "actor"), tag=tag))
    states = torch.load(folder / "mp_rank_00_model_states.pt", map_location="cpu", weights_only=False)
    return {name: tensor.float() for name, tensor in states["module"].items()}


def export_hf_from_checkpoint(root: Path, tag: str, out_dir: Path, model_from: Path) -> Path:
    """Write the actor of checkpoint `tag` as an HF folder (float32), with the architecture
    and tokenizer of `model_from` (the run's initial model), for serving and evaluation."""
    from transformers import AutoModelForCausalLM

    state = actor_state_dict(root, tag)
    model = AutoModelForCausalLM.from_pretrained(str(model_from), dtype=torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {name for name in missing if name.endswith("lm_head.weight") and model.config.tie_word_embeddings}
    if unexpected or set(missing) - tied:
        raise ValueError(
            f"checkpoint {Path(root) / 'actor' / tag} does not fit {model_from}: "
            f"missing {sorted(set(missing) - tied)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    _finish_hf_folder(tmp, out_dir, model_from)
    return out_dir

"""The checkpoints of `outrider eval`: `NAME=SOURCE` arguments, what they point at, and
the checks that they can be compared at all.

A SOURCE is a built-in model name (`outrider models list`), an HF model folder, a run
folder (its `final/` export, else its newest checkpoint), a run's `checkpoints/` folder
(the newest), or one checkpoint: `RUN_DIR/checkpoints/step-N` (N as a number) or
`RUN_DIR/checkpoints/actor/step-0000012`. A DeepSpeed checkpoint is turned into an HF
folder (`outrider.learner.checkpoint.export_hf_from_checkpoint`) before it is served,
with the architecture and tokenizer of the run's initial model (`learner.model` in the
run's run.yaml).

Comparing pass@k, solutions' perplexities and token entropies across checkpoints only
means something over one tokenizer: `tokenizer_difference` compares vocabularies,
special tokens, and the tokens of a probe text and of a rendered chat.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_STEP = re.compile(r"^step-(\d+)$")
PROBE_TEXT = "Outrider probe: 17 + 25 = 42.\nÉlan, naïve café — 東京 🚀 <b>x</b>\t  spaces"
PROBE_CHAT = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "What is 6 * 7?"}]


class CheckpointError(ValueError):
    """A --checkpoint argument that cannot be evaluated, with the reason."""


@dataclass(frozen=True)
class Checkpoint:
    name: str
    source: str
    """The argument as given."""
    folder: Path | None = None
    """The HF folder to serve (built-in models, HF folders, a run's final export)."""
    checkpoints_root: Path | None = None
    """A DeepSpeed checkpoint: the run's checkpoints/ folder ..."""
    tag: str | None = None
    """... and the checkpoint's tag (step-NNNNNNN)."""
    model_from: Path | None = None
    """A DeepSpeed checkpoint: the run's initial model (architecture and tokenizer)."""

    @property
    def tokenizer_dir(self) -> Path:
        return self.folder if self.folder is not None else self.model_from  # type: ignore[return-value]

    @property
    def needs_export(self) -> bool:
        return self.folder is None

    def describe(self) -> str:
        if self.folder is not None:
            return str(self.folder)
        return f"{self.checkpoints_root}/actor/{self.tag} (DeepSpeed; architecture of {self.model_from})"

    def hf_folder(self, cache: Path) -> Path:
        """The HF folder to serve; a DeepSpeed checkpoint is exported once into `cache/<name>`."""
        if self.folder is not None:
            return self.folder
        from outrider.learner.checkpoint import export_hf_from_checkpoint

        out = Path(cache) / self.name
        marker = out / ".outrider-source.json"
        wanted = {"checkpoints": str(self.checkpoints_root), "tag": self.tag, "model_from": str(self.model_from)}
        if marker.is_file() and json.loads(marker.read_text()) == wanted:
            return out
        out.parent.mkdir(parents=True, exist_ok=True)
        export_hf_from_checkpoint(self.checkpoints_root, self.tag, out, self.model_from)
        marker.write_text(json.dumps(wanted))
        return out


def parse_checkpoint_args(values: list[str]) -> list[tuple[str, str]]:
    """`NAME=SOURCE` strings -> (name, source), names valid and unique."""
    if not values:
        raise CheckpointError("--checkpoint: give at least one, as NAME=SOURCE (e.g. base=smollm2-135m-instruct)")
    pairs, seen = [], set()
    for value in values:
        name, sep, source = value.partition("=")
        name, source = name.strip(), source.strip()
        if not sep or not name or not source:
            raise CheckpointError(f"--checkpoint {value!r}: expected NAME=SOURCE (e.g. rl=runs/demo/checkpoints/step-20)")
        if not NAME_PATTERN.match(name):
            raise CheckpointError(
                f"--checkpoint {value!r}: the name {name!r} must be 1-64 letters, digits, '_', '.' or '-' "
                "(it names files of the evaluation)"
            )
        if name in seen:
            raise CheckpointError(f"--checkpoint: the name {name!r} is given twice; each checkpoint needs its own name")
        seen.add(name)
        pairs.append((name, source))
    return pairs


def resolve_checkpoint(name: str, source: str, where: str | None = None) -> Checkpoint:
    """What SOURCE points at (see the module docstring); CheckpointError when nothing fits,
    its message starting with `where` (default: the --checkpoint argument)."""
    from outrider.models import BUILTIN_MODELS, builtin_names, resolve_model

    where = where or f"--checkpoint {name}={source}"
    if source in BUILTIN_MODELS:
        return Checkpoint(name, source, folder=resolve_model(source))
    path = Path(source).expanduser()
    step = _STEP.match(path.name)
    if step and path.parent.name == "checkpoints" and (path.parent / "actor").is_dir():
        # RUN_DIR/checkpoints/step-N names a step; its files are under actor/, rng/, state/.
        return _deepspeed(name, source, path.parent.resolve(), int(step.group(1)), where)
    if not path.exists():
        from outrider.models import ModelNotFound
        from outrider.models.hub import is_hub_id

        if is_hub_id(source):
            try:
                return Checkpoint(name, source, folder=resolve_model(source))
            except ModelNotFound as exc:
                raise CheckpointError(f"{where}: {exc}") from exc
        raise CheckpointError(
            f"{where}: no such file or folder, not a built-in model (built-in: {', '.join(builtin_names())}), "
            "and not a Hugging Face Hub id (owner/name[@revision])"
        )
    path = path.resolve()
    if (path / "config.json").is_file():
        return Checkpoint(name, source, folder=path)
    if (path / "final" / "config.json").is_file():
        return Checkpoint(name, source, folder=path / "final")
    if (path / "checkpoints").is_dir():
        return _deepspeed(name, source, path / "checkpoints", None, where)
    if path.name == "checkpoints" and (path / "actor").is_dir():
        return _deepspeed(name, source, path, None, where)
    if step and path.parent.name == "actor" and path.parent.parent.name == "checkpoints":
        return _deepspeed(name, source, path.parent.parent, int(step.group(1)), where)
    raise CheckpointError(
        f"{where}: {path} is not an HF model folder (no config.json), a run folder, or a run's checkpoint "
        "(RUN_DIR/checkpoints/step-N)"
    )


def _deepspeed(name: str, source: str, root: Path, step: int | None, where: str) -> Checkpoint:
    from outrider.config import ConfigError, RunConfig, load_config
    from outrider.learner.checkpoint import checkpoint_tag
    from outrider.models import ModelNotFound, resolve_model

    try:
        tag = checkpoint_tag(root, step)
    except FileNotFoundError as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    run_yaml = root.parent / "run.yaml"
    if not run_yaml.is_file():
        raise CheckpointError(f"{where}: {run_yaml} is missing; it names the run's initial model (learner.model)")
    try:
        config = load_config(run_yaml)
        # A run config names it in its learner section; an offline (sft/dpo) config at top level.
        model = config.learner.model if isinstance(config, RunConfig) else getattr(config, "model", None)
        if model is None:
            raise CheckpointError(f"{where}: {run_yaml} is a {config.kind!r} config and names no initial model")
        model_from = resolve_model(model)
    except (ConfigError, ModelNotFound) as exc:
        raise CheckpointError(f"{where}: the run's initial model from {run_yaml}: {exc}") from None
    return Checkpoint(name, source, checkpoints_root=root, tag=tag, model_from=model_from)


def tokenizer_difference(base: Path, other: Path) -> str | None:
    """None when the two folders tokenize alike, else what differs (for the error message)."""
    from transformers import AutoTokenizer

    a, b = AutoTokenizer.from_pretrained(str(base)), AutoTokenizer.from_pretrained(str(other))
    vocab_a, vocab_b = a.get_vocab(), b.get_vocab()
    if vocab_a != vocab_b:
        differing = next((t for t in vocab_a if vocab_b.get(t) != vocab_a[t]), None)
        example = (
            f"; e.g. {differing!r} is id {vocab_a[differing]} in one and {vocab_b.get(differing, 'absent')} in the other"
            if differing is not None else ""
        )
        return f"the vocabularies differ ({len(vocab_a)} vs {len(vocab_b)} tokens{example})"
    for attribute in ("eos_token_id", "bos_token_id", "pad_token_id"):
        if getattr(a, attribute) != getattr(b, attribute):
            return f"{attribute} differs ({getattr(a, attribute)} vs {getattr(b, attribute)})"
    if a(PROBE_TEXT, add_special_tokens=True)["input_ids"] != b(PROBE_TEXT, add_special_tokens=True)["input_ids"]:
        return "a probe text tokenizes differently"
    if bool(a.chat_template) != bool(b.chat_template):
        return "one has a chat template and the other has none"
    if a.chat_template and _chat_ids(a) != _chat_ids(b):
        return "the chat templates render a probe conversation differently"
    return None


def _chat_ids(tokenizer) -> list[int]:
    text = tokenizer.apply_chat_template(PROBE_CHAT, tokenize=False, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])

"""What `outrider eval` keeps on disk while it runs, so that it can resume.

    EVAL_DIR/manifest.json             the evaluation's settings (checkpoints, base, tasks, n, seed, ...)
    EVAL_DIR/samples/<checkpoint>.jsonl one TaskSamples per finished (checkpoint, task): counts,
                                        entropies, and the correct episodes' tokens, appended
                                        and fsynced as each task finishes sampling
    EVAL_DIR/records/<checkpoint>.jsonl one TaskRecord (outrider.eval.records) per task once
                                        its solutions are scored under the base model
    EVAL_DIR/models/<checkpoint>/      HF exports of DeepSpeed checkpoints
    EVAL_DIR/logs/                     services, rollout workers, and the workers' activity log

A (checkpoint, task) in samples/ is never sampled again; one in records/ is never
scored again. A line cut short by a kill is ignored (its task is redone).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from google.protobuf import json_format

from outrider.eval.records import RECORDS_DIR, TaskRecord
from outrider.proto.v1 import eval_pb2

SAMPLES_DIR = "samples"
MANIFEST = "manifest.json"
MODELS_DIR = "models"
LOGS_DIR = "logs"


def task_key(env: str, task_id: str) -> str:
    """The id of a held-out task in an evaluation: environment names keep apart the task
    ids that two environments share ("test-00003")."""
    return f"{env}/{task_id}"


def append_line(path: Path, data: dict) -> None:
    """Append one JSON line and fsync it: once this returns, a kill cannot lose it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(data, separators=(",", ":")) + "\n")
        out.flush()
        os.fsync(out.fileno())


def append_samples(eval_dir: Path, samples: eval_pb2.TaskSamples) -> None:
    append_line(Path(eval_dir) / SAMPLES_DIR / f"{samples.checkpoint}.jsonl", json_format.MessageToDict(samples, preserving_proto_field_name=True))


def append_record(eval_dir: Path, record: TaskRecord) -> None:
    append_line(Path(eval_dir) / RECORDS_DIR / f"{record.checkpoint}.jsonl", record.to_json())


def load_samples(eval_dir: Path, checkpoint: str) -> dict[str, eval_pb2.TaskSamples]:
    """task key -> TaskSamples of one checkpoint; a later line for a task wins."""
    path = Path(eval_dir) / SAMPLES_DIR / f"{checkpoint}.jsonl"
    out: dict[str, eval_pb2.TaskSamples] = {}
    if not path.exists():
        return out
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            samples = json_format.ParseDict(json.loads(line), eval_pb2.TaskSamples())
        except (json.JSONDecodeError, json_format.ParseError) as exc:
            if number == len(lines):
                continue  # text after the last newline: a write cut short by a kill
            raise ValueError(f"{path}:{number}: not a TaskSamples line ({exc})") from None
        if samples.checkpoint != checkpoint:
            raise ValueError(f"{path}:{number}: samples of checkpoint {samples.checkpoint!r} in the file of {checkpoint!r}")
        out[task_key(samples.env, samples.task_id)] = samples
    return out


def read_manifest(eval_dir: Path) -> dict | None:
    path = Path(eval_dir) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def write_manifest(eval_dir: Path, manifest: dict) -> None:
    path = Path(eval_dir) / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, path)

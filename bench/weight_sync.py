"""Weight sync, learner -> policy service on one machine: seconds per phase, per mode.

    .venv/bin/python bench/weight_sync.py [--model smollm2-135m-instruct] [--modes stream,path] [--repeats 3]

One policy service (vLLM, the model's own dtype: bf16 for SmolLM2) runs as a
subprocess, as in a local stack; this process holds a real learner engine
(DeepSpeed, fp32, one rank) and publishes its weights with the learner's own
`WeightPublisher`, mode after mode, `--repeats` times each after one warm-up
publish. Every phase comes from a real measurement, the publisher's on the
learner side and the policy's own (`UpdateWeightsResponse`) on the other:

* gather: the full state dict on rank 0;
* write: the learner writing weights (`path`: the HF export, gather included;
  `shm`: one safetensors file in the served dtype);
* serialize: cutting the state dict into TensorChunk messages (`stream`; timed
  apart, since during the RPC it overlaps the transfer);
* transfer: the rest of the policy's receive time (`stream`: receive minus
  assemble minus serialize, so it is approximate);
* assemble, stage (writing received tensors for vLLM's workers), reload,
  cache reset: the policy's phases;
* other: total minus the phases above (RPC overheads, checks, the gate).

Reports the median per phase and a markdown table. After each mode it scores a
fixed sequence, so the table also shows that every mode served the same
weights (max |delta log-prob| against the first mode).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PHASES = ["gather", "write", "serialize", "transfer", "assemble", "stage", "reload", "cache reset", "other", "total"]
SEQUENCE = [1, 4093, 198, 6004, 2, 198, 1, 520, 9531, 198, 504, 2119, 30, 2256, 42, 997, 2]


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}"


def start_policy(model: str, folder: Path) -> tuple[subprocess.Popen, str]:
    config = folder / "policy.yaml"
    config.write_text(
        f"kind: policy\nmodel: {model}\nbackend: vllm\n"
        "limits: {max_context: 512}\nvllm: {cpu_kv_cache_gib: 1}\n"
        "server: {port: 0, metrics_port: null}\nhttp_port: null\n"
    )
    log = open(folder / "policy.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "outrider.services.policy.main", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    for line in process.stdout:
        if line.startswith("OUTRIDER_READY"):
            port = dict(p.split("=", 1) for p in line.split()[1:])["port"]
            # Keep draining: vLLM's workers print progress bars on every reload and block
            # once a pipe nobody reads is full.
            threading.Thread(target=_drain, args=(process.stdout, log), daemon=True).start()
            return process, f"127.0.0.1:{port}"
    raise RuntimeError(f"the policy service exited ({process.wait()}); see {folder / 'policy.log'}")


def _drain(stream, log) -> None:
    for line in stream:
        log.write(line)


def serialize_seconds(state) -> float:
    """Time to cut `state` into the request messages `stream` sends."""
    from outrider.models.tensors import tensor_chunks
    from outrider.proto.v1 import policy_pb2

    started = time.perf_counter()
    for chunk in tensor_chunks(state):
        policy_pb2.UpdateWeightsRequest(chunk=chunk)
    return time.perf_counter() - started


def phases(mode: str, metrics: dict[str, float], serialize: float) -> dict[str, float]:
    """One publish's metrics -> the table's phases."""
    row = {
        "gather": metrics.get("sync/gather_seconds", 0.0),
        "write": metrics.get("sync/export_seconds", 0.0) + metrics.get("sync/write_seconds", 0.0),
        "serialize": serialize if mode == "stream" else 0.0,
        "assemble": metrics["sync/policy_assemble_seconds"],
        "stage": metrics["sync/policy_stage_seconds"],
        "reload": metrics["sync/policy_reload_seconds"],
        "cache reset": metrics["sync/policy_cache_reset_seconds"],
        "total": metrics["sync/seconds"],
    }
    receive = metrics["sync/policy_receive_seconds"]
    row["transfer"] = max(0.0, receive - row["assemble"] - row["serialize"]) if receive else 0.0
    row["other"] = row["total"] - sum(v for k, v in row.items() if k != "total")
    return row


def table(results: dict[str, dict[str, float]], differences: dict[str, float]) -> str:
    lines = [
        "| mode | " + " | ".join(PHASES) + " | max Δ log-prob vs first mode |",
        "| --- | " + " | ".join("---:" for _ in PHASES) + " | ---: |",
    ]
    for mode, row in results.items():
        cells = [f"{row[p]:.2f}" if p != "total" else f"**{row[p]:.2f}**" for p in PHASES]
        lines.append(f"| `{mode}` | " + " | ".join(cells) + f" | {differences[mode]:.1e} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--modes", default="stream,path,shm", help="comma-separated WeightSyncConfig modes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()

    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import torch

    from outrider.config.learner import EngineConfig, OptimizerConfig, WeightSyncConfig
    from outrider.learner.checkpoint import full_state_dict
    from outrider.learner.engine import init_distributed, shutdown_distributed, trainable_engine
    from outrider.learner.models import load_actor, model_folder
    from outrider.learner.weight_sync import WeightPublisher
    from outrider.clients.policy import PolicyClient

    started_at = datetime.datetime.now().astimezone().isoformat(timespec="minutes")
    folder = Path(tempfile.mkdtemp(prefix="bench-weight-sync-"))
    process, address = start_policy(args.model, folder)
    try:
        init_distributed("gloo")
        torch.manual_seed(0)
        engine = trainable_engine(load_actor(args.model), EngineConfig(), OptimizerConfig(lr=1e-6))
        serialize = serialize_seconds(full_state_dict(engine))
        version = 0
        results: dict[str, dict[str, float]] = {}
        scores: dict[str, list[float]] = {}
        with PolicyClient(address) as policy:
            info = policy.info()
            for mode in args.modes.split(","):
                publisher = WeightPublisher(
                    WeightSyncConfig(mode=mode, address=address), address, folder / "weights", model_folder(args.model)
                )
                rows = []
                for repeat in range(args.repeats + 1):
                    version += 1
                    metrics = publisher.publish(engine, version)
                    if repeat:  # the first publish of a mode is a warm-up
                        rows.append(phases(mode, metrics, serialize))
                publisher.close()
                results[mode] = {p: statistics.median(r[p] for r in rows) for p in PHASES}
                scores[mode] = list(policy.score_tokens([(SEQUENCE, 1)]).sequences[0].logprobs)
                print(f"{mode}: {json.dumps({k: round(v, 3) for k, v in results[mode].items()})}", flush=True)
        first = scores[next(iter(scores))]
        differences = {m: max(abs(a - b) for a, b in zip(s, first)) for m, s in scores.items()}
        shutdown_distributed()
    finally:
        process.terminate()
        process.wait(timeout=120)
        shutil.rmtree(folder / "weights", ignore_errors=True)  # path mode's exports: ~0.5 GB each

    shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{started_at}; {machine()}; model {args.model} served as {info.dtype} on vLLM, learner fp32; "
          f"median of {args.repeats} publishes after one warm-up; seconds")
    print(table(results, differences))
    if args.out:
        args.out.write_text(json.dumps({"machine": machine(), "date": started_at, "model": args.model,
                                        "served_dtype": info.dtype, "results": results, "max_logprob_delta": differences}, indent=2))


if __name__ == "__main__":
    main()

"""`outrider sft` and `outrider dpo` end to end through the real CLI: torchrun, DeepSpeed on
gloo, the tiny random model; the HF export is checked with plain transformers code.

Expected numbers come from an independent computation here (a forward of the initial model
on the rendered prompt and answer), not from the trainer's own helpers.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from outrider.models import resolve_model
from testkit.learner import GOOD, PROMPT, completion_margin, learnable_groups, sequence_logprobs

pytestmark = pytest.mark.slow

PROMPTS = [[{"role": "user", "content": f"What is {i} plus {i}?"}] for i in range(8)]
ANSWERS = [f"{i} plus {i} is {2 * i}." for i in range(8)]
WRONG = [f"{2 * i + 1}, I think" for i in range(8)]


def _cli(command: str, config: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "outrider.cli.main", command, str(config), *args],
        env=env, capture_output=True, text=True, timeout=timeout,
    )
    return done


def _config(tmp_path: Path, kind: str, data: dict, **extra) -> Path:
    config = {
        "kind": kind,
        "name": kind,
        "output_dir": str(tmp_path / "runs"),
        "model": "tiny-random",
        "batch_size": 8,  # the whole dataset: step 1's loss is the initial model's, computed below
        "optimizer": {"lr": 1e-3},
        "engine": {"micro_batch_tokens": 128},
        "data": data,
        **extra,
    }
    path = tmp_path / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _answer_logprobs(model, tokenizer, prompt: list[dict], answer: str) -> torch.Tensor:
    """log π of the answer's tokens and the end-of-turn token, after the rendered prompt with
    the assistant header: what the policy samples in a rollout."""
    prefix = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    context = tokenizer(prefix, add_special_tokens=False).input_ids
    completion = tokenizer(answer + tokenizer.eos_token, add_special_tokens=False).input_ids
    ids = torch.tensor([context + completion])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1].double()
    logprobs = torch.log_softmax(logits, -1).gather(-1, ids[0, 1:, None])[:, 0]
    return logprobs[len(context) - 1 :]


def _load(folder):
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def test_sft_loss_falls_and_the_export_loads(tmp_path):
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(
        json.dumps({"messages": p + [{"role": "assistant", "content": a}]}) + "\n" for p, a in zip(PROMPTS, ANSWERS)
    ))
    run = _cli("sft", _config(tmp_path, "sft", {"format": "chat", "path": str(data)}, epochs=6))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "step 6/6" in run.stdout

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("tiny-random"))
    initial = _load(resolve_model("tiny-random"))
    before = torch.cat([_answer_logprobs(initial, tokenizer, p, a) for p, a in zip(PROMPTS, ANSWERS)])
    metrics = _metrics(tmp_path / "runs" / "sft")
    assert [m["step"] for m in metrics] == [1, 2, 3, 4, 5, 6]
    # Step 1 runs the initial weights on all 8 conversations: its loss is their token-mean NLL.
    assert metrics[0]["tokens"] == before.numel()
    assert metrics[0]["loss"] == pytest.approx(float(-before.mean()), rel=1e-5)
    losses = [m["loss"] for m in metrics]
    assert all(b < a for a, b in zip(losses, losses[1:])), f"the loss does not fall: {losses}"

    final = tmp_path / "runs" / "sft" / "final"
    trained = _load(final)
    after = torch.cat([_answer_logprobs(trained, AutoTokenizer.from_pretrained(final), p, a) for p, a in zip(PROMPTS, ANSWERS)])
    assert float(-after.mean()) < float(-before.mean()) - 1.0, "the export does not hold the trained weights"
    assert (tmp_path / "runs" / "sft" / "checkpoints" / "LATEST").read_text().strip() == "step-0000006"
    # RUN_DIR/run.yaml records the effective config, so `outrider export` finds the initial model.
    recorded = yaml.safe_load((tmp_path / "runs" / "sft" / "run.yaml").read_text())
    assert recorded["kind"] == "sft" and recorded["model"] == "tiny-random"
    exported = _cli("export", tmp_path / "runs" / "sft", "--hf", tmp_path / "sft-step-6", timeout=300)
    assert exported.returncode == 0, exported.stdout[-2000:] + exported.stderr[-2000:]
    step6 = _load(tmp_path / "sft-step-6")
    assert all(torch.equal(a, b) for a, b in zip(step6.state_dict().values(), trained.state_dict().values()))

    # A second run into the same folder would append to its metrics: refused unless --overwrite.
    again = _cli("sft", tmp_path / "sft.yaml", timeout=120)
    assert again.returncode == 1 and "holds an earlier run (metrics.jsonl, checkpoints, final)" in again.stderr


def _margins(model, tokenizer) -> list[float]:
    return [
        float(_answer_logprobs(model, tokenizer, p, good).sum() - _answer_logprobs(model, tokenizer, p, bad).sum())
        for p, good, bad in zip(PROMPTS, [str(2 * i) for i in range(8)], WRONG)
    ]


@pytest.mark.parametrize(
    ("loss", "first_loss", "ranks"),
    [
        # π_θ = π_ref at step 1, so h = 0: DPO −log σ(0) = log 2; IPO (0 − 1/(2·0.01))² = 2500.
        # IPO pulls h to 1/(2τ) and no further; τ = 0.01 puts that target (50) beyond where
        # three steps reach, so its margin rises too.
        ({"name": "dpo", "params": {"beta": 0.1}}, math.log(2), 1),
        ({"name": "ipo", "params": {"tau": 0.01}}, 2500.0, 1),
        # Two ranks: pairs and reference scores are sharded and gathered; the same numbers.
        ({"name": "dpo", "params": {"beta": 0.1}}, math.log(2), 2),
    ],
    ids=["dpo", "ipo", "dpo-2-ranks"],
)
def test_dpo_margin_rises(tmp_path, loss, first_loss, ranks):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(
        json.dumps({"prompt": p, "chosen": str(2 * i), "rejected": [{"role": "assistant", "content": w}]}) + "\n"
        for i, (p, w) in enumerate(zip(PROMPTS, WRONG))
    ))
    run = _cli("dpo", _config(tmp_path, "dpo", {"format": "pairs", "path": str(data)}, epochs=3, loss=loss, ranks=ranks))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    metrics = _metrics(tmp_path / "runs" / "dpo")
    assert len(metrics) == 3
    # The reference log-probs were computed with the initial weights: the first step's
    # margin is 0 (same weights, same float32 forward) and the loss its closed form.
    assert metrics[0]["margin"] == pytest.approx(0.0, abs=1e-4)
    assert metrics[0]["loss"] == pytest.approx(first_loss, rel=1e-5)
    assert metrics[-1]["margin"] > metrics[1]["margin"] > 0

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("tiny-random"))
    before = _margins(_load(resolve_model("tiny-random")), tokenizer)
    after = _margins(_load(tmp_path / "runs" / "dpo" / "final"), tokenizer)
    rises = [b - a for a, b in zip(before, after)]
    assert all(r > 0 for r in rises), f"log π(chosen) − log π(rejected) did not rise on every pair: {rises}"
    # The trainer's last metric is the mean h seen by step 3's forward, before its update;
    # the export is after it, so its mean margin gain is at least that.
    assert sum(rises) / len(rises) > metrics[-1]["margin"]


def test_cli_refuses_a_wrong_kind_and_a_missing_dataset(tmp_path):
    config = _config(tmp_path, "sft", {"format": "chat", "path": str(tmp_path / "nowhere.jsonl")})
    done = _cli("dpo", config, timeout=120)
    assert done.returncode == 1 and "kind is 'sft'; `outrider dpo` needs kind: dpo" in done.stderr
    done = _cli("sft", config, timeout=120)
    assert done.returncode == 1 and f"data.path: {tmp_path / 'nowhere.jsonl'} does not exist" in done.stderr


def test_a_bad_record_names_its_line(tmp_path):
    data = tmp_path / "chat.jsonl"
    data.write_text(json.dumps({"messages": PROMPTS[0] + [{"role": "assistant", "content": "0"}]}) + "\n{oops\n")
    done = _cli("sft", _config(tmp_path, "sft", {"format": "chat", "path": str(data)}), timeout=300)
    assert done.returncode != 0
    assert f"data.path: {data}:2: not JSON" in done.stderr


def _groups_jsonl(path: Path) -> Path:
    """What a run's groups look like on the bus: the learner test kit's synthetic task, where
    half of each group answers GOOD (reward 1, solved) and half BAD (reward 0)."""
    from google.protobuf import json_format

    path.write_text("".join(json.dumps(json_format.MessageToDict(g)) + "\n" for g in learnable_groups(4)))
    return path


def test_rejection_sampling_sft_from_groups(tmp_path):
    data = _groups_jsonl(tmp_path / "groups.jsonl")
    run = _cli("sft", _config(tmp_path, "sft", {"format": "trajectories", "path": str(data)}, epochs=3))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # 4 groups × 2 solved episodes, all of them in each step: 3 steps.
    assert [m["examples"] for m in _metrics(tmp_path / "runs" / "sft")] == [8.0, 8.0, 8.0]

    def good(folder) -> float:
        return sum(sequence_logprobs(_load(folder), PROMPT, GOOD))

    assert good(tmp_path / "runs" / "sft" / "final") > good(resolve_model("tiny-random")) + 1.0


def test_dpo_from_groups_best_against_worst(tmp_path):
    data = _groups_jsonl(tmp_path / "groups.jsonl")
    run = _cli("dpo", _config(tmp_path, "dpo", {"format": "groups", "path": str(data)}, epochs=3))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # One pair per group (GOOD against BAD).
    assert [m["pairs"] for m in _metrics(tmp_path / "runs" / "dpo")] == [4.0, 4.0, 4.0]
    assert completion_margin(tmp_path / "runs" / "dpo" / "final") > completion_margin(resolve_model("tiny-random")) + 1.0

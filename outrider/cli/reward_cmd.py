"""`outrider reward ...`: build PRM data, train and evaluate scalar-head reward models, score text."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from outrider.cli.addresses import address_option, resolve_address

app = typer.Typer(help="Reward models: make data, train, evaluate; score against a running service.", no_args_is_help=True)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(1)


@app.command("make-dataset")
def make_dataset(
    out: Path = typer.Option(..., "--out", help="folder for train.jsonl, test.jsonl (and pairs-*.jsonl)"),
    train_size: int = typer.Option(3000, "--train", min=1, help="training problems"),
    test_size: int = typer.Option(400, "--test", min=1, help="held-out problems (no prompt shared with train)"),
    corrupt_fraction: float = typer.Option(0.5, "--corrupt-fraction", min=0.0, max=1.0, help="share of solutions with a wrong step"),
    pairs: bool = typer.Option(True, "--pairs/--no-pairs", help="also write preference pairs for Bradley-Terry"),
    seed: int = typer.Option(0, "--seed", help="generator seed"),
) -> None:
    """Synthetic multi-step arithmetic solutions with correct and corrupted steps, labelled per step."""
    from outrider.services.reward.prm.dataset import make_pair_records, make_step_records, write_jsonl

    out.mkdir(parents=True, exist_ok=True)
    train = make_step_records(train_size, seed, corrupt_fraction)
    test = make_step_records(test_size, seed + 1, corrupt_fraction, exclude={r.prompt for r in train})
    written = {"train.jsonl": write_jsonl(out / "train.jsonl", train), "test.jsonl": write_jsonl(out / "test.jsonl", test)}
    if pairs:
        train_pairs = make_pair_records(train_size, seed + 2)
        test_pairs = make_pair_records(test_size, seed + 3, exclude={r.prompt for r in train_pairs})
        written["pairs-train.jsonl"] = write_jsonl(out / "pairs-train.jsonl", train_pairs)
        written["pairs-test.jsonl"] = write_jsonl(out / "pairs-test.jsonl", test_pairs)
    for name, count in written.items():
        typer.echo(f"wrote {out / name} ({count} records)")


@app.command()
def train(
    data: Path = typer.Option(..., "--data", help="JSONL: step records (classification) or pair records (bradley-terry)"),
    out: Path = typer.Option(..., "--out", help="folder to write the trained model to"),
    objective: str = typer.Option("classification", "--objective", help="classification | bradley-terry"),
    base: str = typer.Option("", "--base", help="start from this pretrained model (HF folder or built-in name); default: a tiny byte-level Llama"),
    eval_data: Path | None = typer.Option(None, "--eval", help="held-out JSONL of the same kind: AUC (steps) or pair accuracy"),
    steps: int = typer.Option(1000, "--steps", min=1, help="optimizer steps"),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="records per step"),
    lr: float = typer.Option(3e-3, "--lr", min=0.0, help="peak learning rate (use ~2e-5 with --base)"),
    hidden_size: int = typer.Option(64, "--hidden-size", min=8, help="width of the tiny model"),
    layers: int = typer.Option(2, "--layers", min=1, help="layers of the tiny model"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda"),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads; 0: 1 for the tiny model, torch's default with --base"),
    seed: int = typer.Option(0, "--seed", help="initialisation and batch order"),
) -> None:
    """Fit a scalar-head model (per-step BCE or Bradley-Terry) and save it for the reward service."""
    from outrider.services.reward.prm import dataset, train as prm_train

    if objective not in ("classification", "bradley-terry"):
        _fail(f"--objective must be classification or bradley-terry, got {objective!r}")
    load = dataset.load_pair_records if objective == "bradley-terry" else dataset.load_step_records
    try:
        records = load(data)
        held_out = load(eval_data) if eval_data else None
    except dataset.DatasetError as exc:
        _fail(str(exc))
    if base:
        from outrider.models import resolve_model

        model, tokenizer = prm_train.pretrained_scorer(resolve_model(base))
    else:
        tokenizer = prm_train.byte_tokenizer()
        model = prm_train.tiny_scorer(tokenizer, hidden_size=hidden_size, layers=layers, seed=seed)
    settings = prm_train.TrainSettings(
        objective=objective, steps=steps, batch_size=batch_size, lr=lr, seed=seed, device=device, threads=threads or (None if base else 1)
    )
    started = time.perf_counter()
    prm_train.train(model, tokenizer, records, settings, on_log=lambda e: typer.echo(f"step {e['step']:>5}  loss {e['loss']:.4f}  lr {e['lr']:.2e}"))
    metrics = {"train_seconds": round(time.perf_counter() - started, 1), "train_records": len(records)}
    if held_out is not None:
        if objective == "bradley-terry":
            metrics["heldout_pair_accuracy"] = prm_train.pair_accuracy(model, tokenizer, held_out, settings.separator)
        else:
            scores, labels = prm_train.step_scores(model, tokenizer, held_out, settings.separator)
            metrics["heldout_auc"] = prm_train.auc(scores, labels)
    prm_train.save_scorer(model, tokenizer, out, settings, metrics)
    typer.echo(json.dumps(metrics))
    typer.echo(f"saved {out} (serve it with reward config `prm: {{type: scalar-head, model: {out}}}`)")


@app.command()
def evaluate(
    model: Path = typer.Option(..., "--model", help="a trained scalar-head model folder"),
    data: Path = typer.Option(..., "--data", help="step records JSONL"),
) -> None:
    """AUC of a scalar-head model's step scores on labelled steps."""
    from outrider.services.reward.prm import dataset, train as prm_train
    from outrider.services.reward.prm.scalar_head import ScalarHeadPRM

    try:
        records = dataset.load_step_records(data)
    except dataset.DatasetError as exc:
        _fail(str(exc))
    prm = ScalarHeadPRM(model, device="cpu")
    scores, labels = prm_train.step_scores(prm.model, prm.tokenizer, records, prm.separator)
    typer.echo(json.dumps({"auc": prm_train.auc(scores, labels), "steps": int(len(labels)), "correct_steps": int(labels.sum())}))


@app.command()
def score(
    response: str = typer.Option(..., "--response", help="the text to judge"),
    reference: str = typer.Option("", "--reference", help="ground truth (answer, or code tests as JSON)"),
    env: str = typer.Option("", "--env", help="environment (selects its verifiers)"),
    verifier: list[str] = typer.Option([], "--verifier", help="use only these verifiers (repeatable)"),
    response_tokens: int = typer.Option(0, "--tokens", min=0, help="response length in tokens (length verifier)"),
    address: str | None = address_option("reward"),
    timeout_s: float = typer.Option(60.0, "--timeout", help="seconds to wait for the answer"),
) -> None:
    """Score one response with a running reward service; print the result as JSON."""
    import grpc
    from google.protobuf.json_format import MessageToDict

    from outrider.clients.reward import RewardClient, ScoreItem

    item = ScoreItem(id="cli", env=env, response=response, reference=reference, response_tokens=response_tokens)
    address = resolve_address("reward", address)
    try:
        with RewardClient(address, timeout_s=timeout_s) as client:
            [result] = client.score([item], verifiers=verifier)
    except grpc.RpcError as exc:
        _fail(f"reward service at {address}: {exc.code().name}: {exc.details()}")
    typer.echo(json.dumps(MessageToDict(result, preserving_proto_field_name=True), indent=2))
    if not result.HasField("reward"):
        raise typer.Exit(2)

"""`outrider env ...`: register, validate, list and play environments of an env service."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import typer
import yaml

from outrider.cli.addresses import address_option, resolve_address
from outrider.config import ConfigError

if TYPE_CHECKING:
    from outrider.proto.v1 import env_pb2

app = typer.Typer(help="Environments of an env service: register specs, list, play.", no_args_is_help=True)

ADDRESS = address_option("env")


def _client(address: str | None):
    from outrider.clients.env import EnvClient  # noqa: PLC0415 - keeps `outrider --help` fast

    return EnvClient(resolve_address("env", address))


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(1)


def _rpc_failure(exc: grpc.RpcError) -> None:
    _fail(f"{exc.code().name}: {exc.details()}")


@app.command()
def validate(files: list[Path] = typer.Argument(..., help="EnvSpec YAML files")) -> None:
    """Check spec files offline; print each problem with its field path."""
    from outrider.envs.spec import load_spec_file  # noqa: PLC0415

    failed = 0
    for path in files:
        try:
            spec = load_spec_file(path)
        except ConfigError as exc:
            failed += 1
            typer.secho(str(exc), fg="red", err=True)
            continue
        typer.echo(f"ok: {path} ({spec.name}, {spec.WhichOneof('kind')})")
    if failed:
        raise typer.Exit(1)


@app.command()
def register(
    spec_file: Path = typer.Argument(..., help="EnvSpec YAML file (see examples/envs/)"),
    address: str | None = ADDRESS,
    replace: bool = typer.Option(False, help="replace an environment of the same name"),
) -> None:
    """Turn a YAML spec into an EnvSpec message and register it."""
    from outrider.envs.spec import load_spec_file  # noqa: PLC0415

    try:
        spec = load_spec_file(spec_file)
    except ConfigError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    with _client(address) as client:
        try:
            stored = client.register(spec, replace=replace)
        except grpc.RpcError as exc:
            _rpc_failure(exc)
    typer.echo(f"registered {stored.name} {stored.version} ({stored.WhichOneof('kind')}) at {address}")


@app.command("list")
def list_envs(address: str | None = ADDRESS, full: bool = typer.Option(False, "--full", help="print every spec as YAML")) -> None:
    """List the registered environments."""
    from outrider.envs.spec import spec_to_dict  # noqa: PLC0415

    with _client(address) as client:
        try:
            specs = client.list_envs()
        except grpc.RpcError as exc:
            _rpc_failure(exc)
    if full:
        typer.echo(yaml.safe_dump([spec_to_dict(spec) for spec in specs], sort_keys=False), nl=False)
        return
    for spec in specs:
        typer.echo(f"{spec.name:<16} {spec.version:<8} max_turns={spec.max_turns:<3} {spec_location(spec)}")


def spec_location(spec: env_pb2.EnvSpec) -> str:
    """What `env list` shows of where an environment runs, by its kind: the Python entry point,
    the remote address, the OpenEnv server's base URL, or the agent program's command line."""
    kind = spec.WhichOneof("kind")
    if kind == "remote":
        return spec.remote.address
    if kind == "openenv":
        return spec.openenv.base_url
    if kind == "agent":
        return " ".join(spec.agent.command)
    return spec.python.entry_point


@app.command()
def tasks(
    env: str = typer.Argument(..., help="environment name"),
    address: str | None = ADDRESS,
    split: str = typer.Option("train", help="train or test"),
    offset: int = typer.Option(0, min=0),
    limit: int = typer.Option(10, min=1),
    reference: bool = typer.Option(False, help="show the ground truth too"),
) -> None:
    """List tasks of an environment."""
    with _client(address) as client:
        try:
            found = client.list_tasks(env, split, offset, limit, include_reference=reference)
        except grpc.RpcError as exc:
            _rpc_failure(exc)
    for task in found:
        preview = task.preview.replace("\n", " ")[:90]
        extra = f"  -> {task.reference[:60]}" if reference else ""
        typer.echo(f"{task.id:<20} d={task.difficulty:g}  {preview}{extra}")


@app.command()
def play(
    env: str = typer.Argument(..., help="environment name"),
    task: str = typer.Option(..., "--task", "-t", help="task id (see `outrider env tasks`)"),
    address: str | None = ADDRESS,
    seed: int = typer.Option(0),
) -> None:
    """Play a session yourself: each line you type is one turn (`\\n` for a line break)."""
    with _client(address) as client:
        try:
            session = client.create_session(env, task, seed)
            _show(session.observation.messages)
            while True:
                text = typer.prompt("you").replace("\\n", "\n")
                reply = client.step(session.session_id, text)
                reward = f"{reply.reward:g}" if reply.HasField("reward") else "absent"
                typer.secho(f"[turn {reply.turn}] reward={reward} status={_status(reply)}", fg="cyan")
                _show(reply.observation.messages)
                if reply.done:
                    break
            summary = client.close_session(session.session_id)
        except grpc.RpcError as exc:
            _rpc_failure(exc)
    typer.echo(f"done: {summary.turns} turns, total reward {summary.total_reward:g}, solved={summary.solved}")


def _status(reply) -> str:
    from outrider.proto.v1 import common_pb2  # noqa: PLC0415

    name = common_pb2.ItemStatus.Code.Name(reply.status.code)
    return f"{name} {reply.status.message}".strip()


def _show(messages) -> None:
    for message in messages:
        who = f"{message.role}:{message.name}" if message.name else message.role
        typer.echo(f"{who}> {message.content}")

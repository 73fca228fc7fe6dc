"""`outrider curriculum ...`: look at a running curriculum service."""

from __future__ import annotations

import json

import grpc
import typer

from outrider.cli.addresses import address_option, resolve_address

app = typer.Typer(help="Inspect the curriculum service.", no_args_is_help=True)


@app.command()
def state(
    address: str | None = address_option("curriculum"),
    max_tasks: int = typer.Option(20, "--max-tasks", "-n", min=0, help="per-task rows to show (most attempted first)"),
    as_json: bool = typer.Option(False, "--json", help="print the state as JSON"),
    timeout_s: float = typer.Option(10.0, "--timeout", help="seconds to wait for the answer"),
) -> None:
    """Print the strategy, per-environment aggregates and the most attempted tasks."""
    from google.protobuf.json_format import MessageToDict

    from outrider.clients.curriculum import CurriculumClient

    address = resolve_address("curriculum", address)
    try:
        with CurriculumClient(address, timeout_s=timeout_s) as client:
            reply = client.state(max_tasks=max_tasks)
    except grpc.RpcError as exc:
        typer.secho(f"error: curriculum service at {address}: {exc.code().name}: {exc.details()}", fg="red", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(MessageToDict(reply, preserving_proto_field_name=True), indent=2))
        return
    typer.echo(f"strategy {reply.strategy}: {reply.num_tasks} tasks, {reply.num_excluded} excluded, {reply.total_attempts} attempts")
    for env in reply.envs:
        typer.echo(
            f"  env {env.env}: {env.tasks} tasks, {env.attempts} attempts, mean reward {env.mean_reward:.3f}, "
            f"mix weight {env.weight:g}, level {env.level:g}"
        )
    if reply.tasks:
        typer.echo(f"  {'env':<12} {'task':<24} {'diff':>5} {'tries':>6} {'mean':>6} {'pass':>6} {'weight':>8} excluded")
    for t in reply.tasks:
        typer.echo(
            f"  {t.env:<12} {t.task_id:<24} {t.difficulty:>5g} {t.attempts:>6} {t.mean_reward:>6.3f} "
            f"{t.pass_rate:>6.3f} {t.weight:>8.4f} {'yes' if t.excluded else 'no'}"
        )

"""`outrider policy query|info` (a running policy service) and `outrider models list|materialize`."""

from __future__ import annotations

import typer

from outrider.cli.addresses import address_option, resolve_address

app = typer.Typer(help="Query a running policy service.", no_args_is_help=True)
models_app = typer.Typer(help="Built-in models and the local model cache.", no_args_is_help=True)

FINISH = {0: "unspecified", 1: "stop", 2: "length", 3: "abort"}


def _fail(exc) -> None:
    import grpc

    if isinstance(exc, grpc.RpcError):
        typer.secho(f"error: {exc.code().name}: {exc.details()}", fg="red", err=True)
        raise typer.Exit(1) from None
    raise exc


@app.command()
def query(
    text: str = typer.Argument(..., help="the prompt"),
    address: str | None = address_option("policy"),
    chat: bool = typer.Option(True, "--chat/--raw", help="wrap as a user chat message (chat template) or send raw text"),
    system: str | None = typer.Option(None, help="system message (with --chat)"),
    max_tokens: int = typer.Option(128, min=1, help="new tokens per completion"),
    temperature: float = typer.Option(0.0, min=0.0, help="0 is greedy"),
    top_p: float = typer.Option(1.0, help="nucleus mass in (0, 1]"),
    n: int = typer.Option(1, min=1, help="completions"),
    seed: int | None = typer.Option(None, help="seed for reproducible sampling"),
    show_ids: bool = typer.Option(False, help="also print token ids and logprobs"),
) -> None:
    """Generate from the served policy and print the completions."""
    from outrider.clients.policy import PolicyClient

    if chat:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
        prompt = messages
    else:
        prompt = text
    with PolicyClient(resolve_address("policy", address), timeout_s=600) as client:
        try:
            reply = client.generate(
                [prompt], n=n, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed
            )
        except Exception as exc:  # noqa: BLE001 - gRPC errors are reported, others re-raised
            _fail(exc)
    result = reply.results[0]
    for j, completion in enumerate(result.completions):
        if n > 1:
            typer.echo(f"--- completion {j}")
        typer.echo(completion.text)
        if show_ids:
            typer.echo(f"token_ids: {list(completion.token_ids)}")
            typer.echo(f"logprobs: {[round(x, 4) for x in completion.logprobs]}")
        typer.secho(
            f"[{len(completion.token_ids)} tokens, finish: {FINISH.get(completion.finish_reason, '?')}]", dim=True, err=True
        )
    typer.secho(f"[model {reply.model}, policy version {reply.policy_version}, prompt {len(result.prompt_ids)} tokens]",
                dim=True, err=True)


@app.command()
def info(address: str | None = address_option("policy")) -> None:
    """Print the served model, backend, weights version and limits."""
    from outrider.clients.policy import PolicyClient

    with PolicyClient(resolve_address("policy", address), timeout_s=60) as client:
        try:
            reply = client.info()
        except Exception as exc:  # noqa: BLE001
            _fail(exc)
    for field in ("model", "backend", "policy_version", "max_context_length", "vocab_size", "dtype", "device",
                  "max_prompts", "max_n", "max_tokens"):
        typer.echo(f"{field:<20}{getattr(reply, field)}")
    typer.echo(f"{'eos_token_ids':<20}{list(reply.eos_token_ids)}")


@models_app.command("list")
def list_models() -> None:
    """Built-in model names and whether they are materialized in the cache."""
    from outrider.models import builtin_names, builtin_path, is_complete

    for name in builtin_names():
        path = builtin_path(name)
        state = str(path) if is_complete(path) else "(not materialized yet)"
        typer.echo(f"{name:<24}{state}")


@models_app.command()
def materialize(name: str = typer.Argument(..., help="a built-in model name")) -> None:
    """Build a built-in model into the cache now (services otherwise do it on first start)."""
    from outrider.models import ModelNotFound
    from outrider.models import materialize as build

    try:
        typer.echo(build(name))
    except ModelNotFound as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None

"""The `outrider` command line."""

from __future__ import annotations

import sys

import typer

from outrider.cli import (
    config_cmd,
    curriculum_cmd,
    deploy_cmd,
    env_cmd,
    eval_cmd,
    experiment_cmd,
    export_cmd,
    learn_cmd,
    offline_cmd,
    policy_cmd,
    reward_cmd,
    stack_cmd,
    train_cmd,
)

app = typer.Typer(
    name="outrider",
    help="Outrider: multi-turn agentic RL for language models, as services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Subcommands inherit it from the group's context: `outrider train -h` works too.
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"outrider {version()}")
        raise typer.Exit()


def version() -> str:
    """The installed distribution's version (the package's own when run from a bare checkout)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("outrider")
    except PackageNotFoundError:
        from outrider import __version__

        return __version__


@app.callback()
def _root(
    _: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version and exit"),
) -> None:
    """Outrider: multi-turn agentic RL for language models, as services."""


app.add_typer(config_cmd.app, name="config")
app.add_typer(env_cmd.app, name="env")
app.add_typer(curriculum_cmd.app, name="curriculum")
app.add_typer(reward_cmd.app, name="reward")
app.add_typer(policy_cmd.app, name="policy")
app.add_typer(policy_cmd.models_app, name="models")
app.add_typer(deploy_cmd.app, name="deploy")
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(stack_cmd.serve)
app.command()(stack_cmd.up)
app.command()(learn_cmd.learn)
app.command()(train_cmd.train)
app.command()(train_cmd.worker)
app.command()(train_cmd.report)
app.command()(train_cmd.demo)
app.command(name="eval")(eval_cmd.eval_command)
app.command()(experiment_cmd.experiment)
app.command()(export_cmd.export)
app.command()(offline_cmd.sft)
app.command()(offline_cmd.dpo)


def main() -> None:
    sys.exit(app())


if __name__ == "__main__":
    main()

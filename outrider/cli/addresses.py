"""Where a command finds a running service: one flag, one variable, one state file.

Every command that talks to a service takes `--address HOST:PORT` (`-a`). Without it,
the address comes from `OUTRIDER_<SERVICE>_ADDRESS`, else from the state file of a
stack running on this machine: `outrider up` and `outrider train` write
`<run_dir>/stack/addresses.json` once every service is SERVING (and remove it when
they stop), so `outrider env list` beside a running `outrider up` needs no address.
The newest state file under `./runs` whose stack process is alive wins; the command
says which one it used.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from outrider.process import pid_alive

# outrider.stack's STATE_FILE, spelled here so that `outrider --help` need not import the stack.
STATE_FILE = "addresses.json"


def env_var(service: str) -> str:
    return f"OUTRIDER_{service.upper()}_ADDRESS"


def address_option(service: str):
    return typer.Option(
        None, "--address", "-a", metavar="HOST:PORT",
        help=f"the {service} service (default: ${env_var(service)}, else the stack that `outrider up` or "
        "`outrider train` runs under ./runs)",
    )


def running_stacks(root: Path = Path("runs")) -> list[tuple[Path, dict]]:
    """State files of live stacks under `root`, newest first."""
    found = []
    for path in root.glob(f"*/stack/{STATE_FILE}"):
        try:
            state = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(state.get("pid"), int) and pid_alive(state["pid"]):
            found.append((path.stat().st_mtime, path, state))
    return [(path, state) for _, path, state in sorted(found, key=lambda f: f[0], reverse=True)]


def resolve_address(service: str, given: str | None) -> str:
    """The address to use, or exit 2 with a line that says how to give one. The
    credentials of a local stack serving that address are used too (`use_stack_credentials`)."""
    if given or os.environ.get(env_var(service)):
        address = given or os.environ[env_var(service)]
        use_stack_credentials(address)
        return address
    for path, state in running_stacks():
        address = state.get("addresses", {}).get(service)
        if address:
            typer.secho(f"using the {service} service of {path.parent.parent} ({address})", err=True, fg="bright_black")
            use_stack_credentials(address)
            return address
    typer.secho(
        f"error: no {service} service address: pass --address HOST:PORT, set {env_var(service)}, or start a stack "
        f"with `outrider up` (its addresses are read from runs/*/stack/{STATE_FILE})",
        fg="red", err=True,
    )
    raise typer.Exit(2)


def use_stack_credentials(address: str) -> None:
    """Without credentials in the environment (OUTRIDER_TOKEN, OUTRIDER_AUTH_DIR), a command
    calling `address` of a stack running here presents that stack's admin credentials: the
    person at this machine's shell started the stack and can read its credentials folder
    anyway. The clients read them from the environment of this (short-lived) process."""
    if os.environ.get("OUTRIDER_TOKEN") or os.environ.get("OUTRIDER_AUTH_DIR"):
        return
    for _, state in running_stacks():
        if address in state.get("addresses", {}).values() and state.get("auth_dir"):
            os.environ["OUTRIDER_AUTH_DIR"] = state["auth_dir"]
            os.environ["OUTRIDER_AUTH_ROLE"] = "admin"
            return

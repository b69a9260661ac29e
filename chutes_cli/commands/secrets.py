"""`chutes secrets set|list|delete`: secrets a chute's instances get as environment variables."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from chutes_cli.hostcalls import HostOpt, JsonOpt, KeyOpt, call_host

ChuteOpt = Annotated[
    str,
    typer.Option("--chute", "-c", help="The chute's name (or USER-NAME slug).", metavar="CHUTE", show_default=False),
]
SecretArg = Annotated[
    str, typer.Argument(help="The variable's name, e.g. HF_TOKEN.", metavar="NAME", show_default=False)
]


def set_secret(
    name: SecretArg,
    value: Annotated[
        str, typer.Argument(help="The value, or - to read it from standard input.", metavar="VALUE", show_default=False)
    ],
    chute: ChuteOpt,
    host: HostOpt = None,
    key: KeyOpt = None,
) -> None:
    """Set a secret of a chute; its instances get it as an environment variable from their next start.

    Example: echo "$HF_TOKEN" | chutes secrets set HF_TOKEN - --chute my-chute
    """
    from chutes_cli.errors import fail_usage

    if value == "-":
        value = sys.stdin.read()
        value = value[:-1] if value.endswith("\n") else value
        value = value[:-1] if value.endswith("\r") else value
    if not value:
        fail_usage("the value is empty; pass it as VALUE, or pipe it in with VALUE '-'")
    result = call_host(host, key, lambda c: c.set_secret(chute, name, value))
    typer.echo(
        f"Set {result['name']} for chute {result['chute']}; it takes effect when the chute next (re)starts "
        f"(e.g. `chutes deploy`).",
        err=True,
    )


def list_secrets(chute: ChuteOpt, host: HostOpt = None, key: KeyOpt = None, as_json: JsonOpt = False) -> None:
    """List a chute's secrets: names and when they were set, never values."""
    found = call_host(host, key, lambda c: c.list_secrets(chute))
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    if not found:
        typer.echo(
            f"No secrets for chute {chute}; add one with `chutes secrets set NAME VALUE --chute {chute}`.", err=True
        )
    for secret in found:
        typer.echo(f"{secret['name']}\tset {secret['updated_at']}\tcreated {secret['created_at']}")


def delete_secret(name: SecretArg, chute: ChuteOpt, host: HostOpt = None, key: KeyOpt = None) -> None:
    """Delete a secret of a chute; instances started afterwards no longer get it."""
    result = call_host(host, key, lambda c: c.delete_secret(chute, name))
    typer.echo(f"Deleted {result['deleted']} of chute {result['chute']}.", err=True)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Manage the secrets your chutes get as environment variables.", no_args_is_help=True)
    group.command("set")(set_secret)
    group.command("list")(list_secrets)
    group.command("delete")(delete_secret)
    app.add_typer(group, name="secrets")

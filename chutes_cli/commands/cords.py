"""`chutes cords`: list a chute's cords, as a table or as JSON."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def list_cords(
    ref: Annotated[str, typer.Argument(help="The chute: module:attr, path/to/file.py:attr, or module.", metavar="REF")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List a chute's cords and their inputs.

    For each cord: method, path, whether it streams, its passthrough target and input fields.

    Example: chutes cords my_chute:chute --json
    """
    from chutes.loader import load_chute
    from chutes_cli.listing import describe_cords, format_inputs

    chute = load_chute(ref)
    cords = describe_cords(chute)
    if as_json:
        typer.echo(json.dumps({"slug": chute.slug, "cords": cords}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{chute.slug}: {len(cords)} cord(s)", title_justify="left")
    for column in ("method", "path", "stream", "passthrough", "input", "cord"):
        table.add_column(column, overflow="fold")
    for cord in cords:
        table.add_row(
            cord["method"],
            cord["path"],
            "yes" if cord["stream"] else "",
            cord["passthrough_target"] or "",
            format_inputs(cord["input"]),
            cord["name"],
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Adds `chutes cords` to `app`."""
    app.command("cords")(list_cords)

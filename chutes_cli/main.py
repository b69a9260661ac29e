"""The `chutes` command: a Typer app that registers each command group lazily."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="chutes",
    help="Serve async Python functions as fast, streaming HTTP endpoints.",
    no_args_is_help=True,
    add_completion=False,
)

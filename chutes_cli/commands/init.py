"""`chutes init`: scaffold a working chute with a test, from a template."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class Template(StrEnum):
    basic = "basic"
    stream = "stream"
    passthrough = "passthrough"
    upload = "upload"


def init_chute(
    name: Annotated[
        str, typer.Argument(help="Chute name, also the new directory's name (e.g. my-chute).", metavar="NAME")
    ],
    template: Annotated[
        Template,
        typer.Option(
            "--template", "-t", help="What the chute does: basic, stream, passthrough, upload.", metavar="TEMPLATE"
        ),
    ] = Template.basic,
    username: Annotated[str, typer.Option(help="Your username on the chutes host.", metavar="USERNAME")] = "myuser",
    directory: Annotated[
        Path, typer.Option("--dir", help="Where to create the chute's directory.", metavar="DIR")
    ] = Path("."),
) -> None:
    """Create a new chute from a template.

    NAME/ gets a chute module, its test (which passes as generated), requirements.txt and a README.

    Example: chutes init my-chute --template stream
    """
    from chutes_cli.scaffold import render_scaffold

    target = render_scaffold(name, template=template.value, username=username, parent=directory)
    module = name.replace("-", "_")
    typer.echo(f"Created {target}/ from the '{template.value}' template:")
    for path in sorted(target.iterdir()):
        typer.echo(f"  {path.name}")
    typer.echo(f"\nNext:\n  cd {target}\n  chutes run {module}:chute --dev\n  pytest")


def register(app: typer.Typer) -> None:
    """Adds `chutes init` to `app`."""
    app.command("init")(init_chute)

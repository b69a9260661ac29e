"""The `chutes` command: a Typer app on which each command module registers itself."""

from __future__ import annotations

import copy
import importlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from chutes_cli import params
from chutes_cli.errors import report_exception

params.install()

# Each defines `register(app)`.
COMMAND_MODULES = (
    "run",
    "invoke",
    "cords",
    "init",
    "config",
    "build",
    "deploy",
    "chutes",
    "secrets",
    "host",
    "jobs",
)


class ChutesApp(typer.Typer):
    """A Typer app that turns known errors into `Error: ...` lines instead of tracebacks."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        target = self.narrowed_to(requested_command(sys.argv[1:])) if not args and not kwargs else self
        try:
            return typer.Typer.__call__(target, *args, **kwargs)
        except Exception as exc:
            code = report_exception(exc)
            if code is None:
                raise
            sys.exit(code)

    def narrowed_to(self, name: str | None) -> typer.Typer:
        """Returns a copy holding only the command or group `name`, if there is one.

        Typer turns every command's signature into click parameters before parsing; doing it
        for the one command being run keeps `chutes invoke` fast as command modules multiply.
        """
        if name is None:
            return self
        commands = [c for c in self.registered_commands if command_name(c) == name]
        groups = [g for g in self.registered_groups if (g.name or g.typer_instance.info.name) == name]
        if not commands and not groups:
            return self
        narrowed = copy.copy(self)
        narrowed.registered_commands = commands
        narrowed.registered_groups = groups
        return narrowed


def requested_command(argv: list[str]) -> str | None:
    """Returns the command name in argv (after the root options), or None."""
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--config":
            index += 2
        elif arg.startswith("--config="):
            index += 1
        elif arg.startswith("-"):
            return None
        else:
            return arg
    return None


def command_name(info: Any) -> str:
    """Returns the name a registered command is called by."""
    return info.name or info.callback.__name__.lower().replace("_", "-")


app = ChutesApp(
    name="chutes",
    help="Serve async Python functions as fast, streaming HTTP endpoints.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    # Plain click help and usage errors: rendering them with rich costs more start-up time
    # than the rest of a command, and click's "Error: ..." lines are what scripts expect.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def show_version(value: bool) -> None:
    """Prints the version and exits, for `--version`."""
    if value:
        from chutes import __version__

        typer.echo(f"chutes {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Config file to use (default: $CHUTES_CONFIG or ~/.chutes/config.toml).",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=show_version, is_eager=True, help="Show the version and exit."),
    ] = False,
) -> None:
    """Serve async Python functions as fast, streaming HTTP endpoints.

    Example: chutes run my_chute:chute --dev
    """
    if config is not None:
        from chutes_cli.config import use_config_path

        use_config_path(config)


def register_commands(target: typer.Typer) -> None:
    """Imports each command module and lets it register on `target`."""
    for name in COMMAND_MODULES:
        importlib.import_module(f"chutes_cli.commands.{name}").register(target)


register_commands(app)

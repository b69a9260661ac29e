"""The `chutes` command: a Typer app on which each command module registers itself."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from chutes_cli import params
from chutes_cli.errors import report_exception

params.install()

# Modules that may not exist yet are skipped; each defines `register(app)`.
COMMAND_MODULES = (
    "run",
    "invoke",
    "cords",
    "init",
    "config",
    "build",
    "deploy",
    "chutes",
    "host",
)


class ChutesApp(typer.Typer):
    """A Typer app that turns known errors into `Error: ...` lines instead of tracebacks."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:
            code = report_exception(exc)
            if code is None:
                raise
            sys.exit(code)


app = ChutesApp(
    name="chutes",
    help="Serve async Python functions as fast, streaming HTTP endpoints.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
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
    """Imports each command module that exists and lets it register on `target`."""
    for name in COMMAND_MODULES:
        module_name = f"chutes_cli.commands.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        module.register(target)


register_commands(app)

"""How the CLI reports a mistake: `Error: ...` on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

USAGE_EXIT_CODE = 2


class CLIError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def print_error(message: str) -> None:
    """Writes `Error: message` to stderr."""
    sys.stderr.write(f"Error: {message.rstrip()}\n")
    sys.stderr.flush()


def fail(message: str, *, exit_code: int = 1) -> NoReturn:
    """Prints `Error: message` to stderr and exits with `exit_code` (1, or 2 for usage)."""
    print_error(message)
    raise typer.Exit(exit_code)


def fail_usage(message: str) -> NoReturn:
    """Fails with exit code 2, for a bad option value or combination."""
    fail(message, exit_code=USAGE_EXIT_CODE)


def report_exception(exc: BaseException) -> int | None:
    """Prints a known error and returns its exit code, or returns None for a bug to re-raise."""
    build_errors = sys.modules.get("chutes_build.errors")  # not imported: no build ran, so none was raised
    if isinstance(exc, CLIError) or (build_errors is not None and isinstance(exc, build_errors.BuildError)):
        print_error(exc.message)
        return exc.exit_code
    runtime_errors = sys.modules.get("chutes.exceptions")
    if runtime_errors is not None and isinstance(exc, runtime_errors.ChutesError):
        print_error(str(exc))
        return 1
    return None

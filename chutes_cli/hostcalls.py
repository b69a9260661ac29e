"""What the commands that talk to a host share: the --host, --key and --json options, and one way to call."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:
    from chutes_cli.host_client import HostClient

T = TypeVar("T")

HostOpt = Annotated[
    str | None, typer.Option("--host", help="The host's URL [default: config api_url].", show_default=False)
]
KeyOpt = Annotated[str | None, typer.Option("--key", help="API key [default: config api_key].", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the host's JSON answer.")]


def call_host(host: str | None, key: str | None, fn: Callable[[HostClient], T]) -> T:
    """Calls fn with a client of the host (the configured one unless given); its errors become CLIErrors."""
    from chutes_cli.commands.deploy import resolve_host
    from chutes_cli.errors import CLIError
    from chutes_cli.host_client import HostAPIError, HostClient

    url, api_key = resolve_host(host, key)
    try:
        with HostClient(url, api_key) as client:
            return fn(client)
    except HostAPIError as exc:
        raise CLIError(str(exc)) from None


def print_stream(host: str | None, key: str | None, open_stream: Callable[[HostClient], Iterable[bytes]]) -> None:
    """Copies the byte chunks that open_stream(client) yields (a log) to stdout as they arrive."""

    def copy(client: HostClient) -> None:
        for chunk in open_stream(client):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()

    call_host(host, key, copy)

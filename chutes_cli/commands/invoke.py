"""`chutes invoke`: call a cord of a local or deployed chute and print what it answers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

METHOD_HELP = "HTTP method (default: POST with a body, GET without)."


def invoke_cord(
    path: Annotated[
        str, typer.Argument(help="The cord's path, e.g. /predict (a query string may follow).", show_default=False)
    ],
    json_body: Annotated[
        str | None, typer.Option("--json", "-j", help='JSON body, e.g. \'{"text": "hi"}\'.', show_default=False)
    ] = None,
    data: Annotated[
        str | None,
        typer.Option("--data", "-d", help="Raw body: text, @FILE, or @- for stdin.", show_default=False),
    ] = None,
    form: Annotated[
        list[str] | None,
        typer.Option("--form", "-F", help="Multipart field: name=value or name=@FILE[;type=MIME].", show_default=False),
    ] = None,
    query: Annotated[
        list[str] | None, typer.Option("--query", "-q", help="Query parameter name=value.", show_default=False)
    ] = None,
    method: Annotated[str | None, typer.Option("--method", "-X", help=METHOD_HELP, show_default=False)] = None,
    url: Annotated[
        str | None,
        typer.Option("--url", help="Base URL of the chute [default: http://127.0.0.1:8000].", show_default=False),
    ] = None,
    chute: Annotated[
        str | None,
        typer.Option("--chute", help="Call the deployed chute USER/NAME on the configured host.", show_default=False),
    ] = None,
    header: Annotated[
        list[str] | None, typer.Option("--header", "-H", help="Extra header 'Name: value'.", show_default=False)
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the response body to this file.", show_default=False)
    ] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Print the body exactly as received.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server at each step.", min=0.1)] = 300.0,
) -> None:
    """Call a cord and print its answer: JSON pretty-printed, streams as they arrive.

    Example: chutes invoke /echo --json '{"text": "hi"}'
    """
    from chutes_cli.invocation import run_invocation

    run_invocation(
        path,
        json_text=json_body,
        data=data,
        forms=form or [],
        query=query or [],
        method=method,
        url=url,
        chute=chute,
        headers=header or [],
        output=output,
        raw=raw,
        timeout=timeout,
    )


def register(app: typer.Typer) -> None:
    """Adds `chutes invoke` to `app`."""
    app.command("invoke")(invoke_cord)

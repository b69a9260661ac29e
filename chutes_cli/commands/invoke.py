"""`chutes invoke`: call a cord of a local or deployed chute and print what it answers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

METHOD_HELP = "HTTP method (default: POST with a body, GET without)."


def invoke_cord(
    path: Annotated[str, typer.Argument(help="The cord's path, e.g. /predict (a query may follow).", metavar="PATH")],
    json_body: Annotated[str | None, typer.Option("--json", "-j", help="JSON body.", metavar="JSON")] = None,
    data: Annotated[
        str | None, typer.Option("--data", "-d", help="Raw body: text, @FILE, or @- for stdin.", metavar="DATA")
    ] = None,
    form: Annotated[
        list[str] | None,
        typer.Option("--form", "-F", help="Multipart field: name=value or name=@FILE[;type=MIME].", metavar="FIELD"),
    ] = None,
    query: Annotated[
        list[str] | None, typer.Option("--query", "-q", help="Query parameter.", metavar="NAME=VALUE")
    ] = None,
    method: Annotated[str | None, typer.Option("--method", "-X", help=METHOD_HELP, metavar="METHOD")] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="Base URL [default: http://127.0.0.1:8000].", metavar="URL")
    ] = None,
    chute: Annotated[
        str | None, typer.Option("--chute", help="Call a deployed chute via the configured host.", metavar="USER/NAME")
    ] = None,
    host: Annotated[
        str | None,
        typer.Option("--host", help="With --chute: the host's URL [default: config api_url].", metavar="URL"),
    ] = None,
    header: Annotated[
        list[str] | None, typer.Option("--header", "-H", help="Extra header 'Name: value'.", metavar="HEADER")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the response body to FILE.", metavar="FILE")
    ] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Print the body exactly as received.")] = False,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the server at each step.", min=0.1, metavar="SECONDS")
    ] = 300.0,
) -> None:
    """Call a cord and print its answer.

    JSON is pretty-printed, streams print as they arrive (one line per server-sent event) and
    binary answers go to --output. On an HTTP error the status and the server's detail go to
    stderr and the exit code is 1.

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
        host=host,
        headers=header or [],
        output=output,
        raw=raw,
        timeout=timeout,
    )


def register(app: typer.Typer) -> None:
    """Adds `chutes invoke` to `app`."""
    app.command("invoke")(invoke_cord)

"""`chutes cords`: list a chute's cords, as a table or as JSON."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def list_cords(
    ref: Annotated[str, typer.Argument(help="The chute: module:attr, path/to/file.py:attr, or module.", metavar="REF")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List a chute's cords and jobs, and their inputs.

    For each cord: method, path, whether it streams, its passthrough target and input fields;
    for each job: its timeout, ports and arguments.

    Example: chutes cords my_chute:chute --json
    """
    from chutes.loader import load_chute
    from chutes_cli.listing import describe_cords, describe_jobs, format_inputs

    chute = load_chute(ref)
    cords = describe_cords(chute)
    jobs = describe_jobs(chute)
    if as_json:
        typer.echo(json.dumps({"slug": chute.slug, "cords": cords, **({"jobs": jobs} if jobs else {})}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    title = f"{chute.slug}: {len(cords)} cord(s)" + (f", {len(jobs)} job(s)" if jobs else "")
    table = Table(title=title, title_justify="left")
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
    console = Console()
    if cords or not jobs:
        console.print(table)
    if jobs:
        job_table = Table(title=None if cords else title, title_justify="left")
        for column in ("job", "timeout", "ports", "input"):
            job_table.add_column(column, overflow="fold")
        for job in jobs:
            ports = ", ".join(f"{p['port']}/{p['proto']} ({p['name']})" for p in job["ports"])
            timeout = "none" if job["timeout"] is None else f"{job['timeout']} s"
            job_table.add_row(job["name"], timeout, ports or "-", format_inputs(job["input"]))
        console.print(job_table)


def register(app: typer.Typer) -> None:
    """Adds `chutes cords` to `app`."""
    app.command("cords")(list_cords)

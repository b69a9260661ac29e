"""`chutes job run REF NAME`: run one job of a chute locally, in the foreground, with its logs live."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Annotated

import typer


def run_job(
    ref: Annotated[str, typer.Argument(help="The chute: module:attr or path/to/file.py:attr.", metavar="REF")],
    name: Annotated[str, typer.Argument(help="The job's name (its function's name).", metavar="NAME")],
    json_text: Annotated[
        str | None, typer.Option("--json", help="The job's arguments as a JSON object.", show_default=False)
    ] = None,
    inputs: Annotated[
        list[Path] | None,
        typer.Option("--input", "-i", help="A file to give the job in its input_dir (repeatable; upload=True only)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="The job's directory: inputs/, outputs/ and result.json [default: ./job-runs/NAME-TIME].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run one job of a chute here, once: startup hooks, the job, shutdown hooks.

    Its logs print as it runs; Ctrl-C cancels it (its shutdown hooks still run). The files it
    writes to output_dir stay in DIR/outputs.

    Example: chutes job run my_chute:chute squares --json '{"n": 1000}'
    """
    import asyncio

    from chutes.jobrun import JobInputError, bind_args, find_job
    from chutes.jobrun import run_job as run_once
    from chutes.loader import load_chute
    from chutes_cli.errors import CLIError
    from chutes_cli.payload import parse_json_option

    args = parse_json_option(json_text) if json_text is not None else {}
    if not isinstance(args, dict):
        raise CLIError(
            f"--json must be an object of the job's arguments, e.g. --json '{{\"n\": 10}}'; got {type(args).__name__}",
            exit_code=2,
        )
    chute = load_chute(ref)
    try:
        job = find_job(chute, name)
        kwargs = bind_args(job, json.dumps(args).encode())
    except JobInputError as exc:
        raise CLIError(str(exc), exit_code=2) from None
    for path in inputs or []:
        if not job.upload:
            raise CLIError(f"{job.where} takes no uploads (upload=False); drop --input", exit_code=2)
        if not path.is_file():
            raise CLIError(f"--input {path}: no such file", exit_code=2)
    work = out or Path("job-runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    (work / "inputs").mkdir(parents=True, exist_ok=True)
    for path in inputs or []:
        shutil.copyfile(path, work / "inputs" / path.name)
    (work / "args.json").write_text(json.dumps(args))
    code = asyncio.run(run_once(chute, job, kwargs, work.resolve()))
    outputs = sorted(p.relative_to(work / "outputs") for p in (work / "outputs").rglob("*") if p.is_file())
    result = json.loads((work / "result.json").read_text()) if (work / "result.json").is_file() else {}
    status = result.get("status", "failed")
    typer.echo(f"job {name}: {status}" + (f" ({result['error']})" if result.get("error") else ""), err=True)
    if status == "succeeded":
        typer.echo(json.dumps(result.get("result"), indent=2))
    typer.echo(f"outputs in {work / 'outputs'}: " + (", ".join(map(str, outputs)) or "none"), err=True)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Run a chute's jobs locally.", no_args_is_help=True)
    group.command("run")(run_job)
    app.add_typer(group, name="job")

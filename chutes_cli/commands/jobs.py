"""`chutes jobs`: a chute's jobs, run here (`run`) or on the host (start|get|logs|cancel|list|download|delete).

`chutes job` is the group's old name, kept as a hidden alias that says to use `chutes jobs`.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Annotated

import typer

from chutes_cli.hostcalls import HostOpt, JsonOpt, KeyOpt, call_host, print_stream

IdArg = Annotated[str, typer.Argument(help="The job's id (or its first 6+ characters).", show_default=False)]
FINISHED = ("succeeded", "failed", "cancelled", "timed_out", "lost")


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

    Example: chutes jobs run my_chute:chute squares --json '{"n": 1000}'
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


def start_job(
    chute: Annotated[str, typer.Argument(help="The chute's name (or USER-NAME slug).", show_default=False)],
    name: Annotated[str, typer.Argument(help="The job's name (its function's name).", show_default=False)],
    args: Annotated[
        str | None, typer.Option("--json", help="The job's arguments as a JSON object.", show_default=False)
    ] = None,
    inputs: Annotated[
        list[Path] | None,
        typer.Option("--input", "-i", help="A file for the job's input_dir (repeatable; upload=True jobs)."),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Print its logs until it ends; exit non-zero unless it succeeded.")
    ] = False,
    host: HostOpt = None,
    key: KeyOpt = None,
) -> None:
    """Start a job of a deployed chute on an instance of its own; prints its id.

    Example: chutes jobs start my-chute squares --json '{"n": 1000}' --follow
    """
    from chutes_cli.errors import CLIError
    from chutes_cli.payload import parse_json_option

    values = parse_json_option(args) if args is not None else {}
    if not isinstance(values, dict):
        raise CLIError(f"--json must be an object of the job's arguments; got {type(values).__name__}", exit_code=2)
    for path in inputs or []:
        if not path.is_file():
            raise CLIError(f"--input {path}: no such file", exit_code=2)
    job = call_host(host, key, lambda c: c.start_job(chute, name, values, inputs=list(inputs or [])))
    typer.echo(job["id"])
    typer.echo(f"job {job['short']} of {job['chute']}: {job['status']}", err=True)
    if follow:
        _follow(job["id"], host, key)


def _follow(job_id: str, host: str | None, key: str | None) -> None:
    try:
        print_stream(host, key, lambda c: c.stream_job_logs(job_id, tail=10_000, follow=True))
        job = call_host(host, key, lambda c: c.get_job(job_id))
        while job["status"] not in FINISHED:  # the log ended before the record did
            time.sleep(0.2)
            job = call_host(host, key, lambda c: c.get_job(job_id))
    except KeyboardInterrupt:
        typer.echo(f"stopped following; the job runs on (cancel it with `chutes jobs cancel {job_id[:10]}`)", err=True)
        raise typer.Exit(130) from None
    _summary(job)
    if job["status"] != "succeeded":
        raise typer.Exit(1)


def _summary(job: dict) -> None:
    reason = f" ({job['reason']})" if job.get("reason") else ""
    typer.echo(f"job {job['short']} {job['status']}{reason}", err=True)


def get_job(job_id: IdArg, host: HostOpt = None, key: KeyOpt = None, as_json: JsonOpt = False) -> None:
    """Show a job's status, result and output files."""
    job = call_host(host, key, lambda c: c.get_job(job_id))
    if as_json:
        typer.echo(json.dumps(job, indent=2))
        return
    typer.echo(f"{job['id']}  {job['chute']}  {job['name']}  {job['status']}")
    if job.get("reason"):
        typer.echo(f"reason: {job['reason']}")
    if job.get("exit_code") is not None:
        typer.echo(f"exit code: {job['exit_code']}")
    if job.get("url"):
        typer.echo(f"ports at: {job['url']}")
    if job["status"] == "succeeded":
        typer.echo(f"result: {json.dumps(job.get('result'))}")
    for output in job.get("outputs") or []:
        typer.echo(f"output {output['path']}  {output['size']} bytes")
    if job.get("outputs_next") is not None:
        typer.echo(f"(more outputs: `chutes jobs download {job['short']}` fetches them all)")
    if job.get("outputs_note"):
        typer.echo(f"note: {job['outputs_note']}")


def list_jobs(
    chute: Annotated[str | None, typer.Argument(help="Only this chute's jobs.", show_default=False)] = None,
    host: HostOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List your jobs, newest first."""
    jobs = call_host(host, key, lambda c: c.list_jobs(chute))
    if as_json:
        typer.echo(json.dumps(jobs, indent=2))
        return
    if not jobs:
        typer.echo("No jobs yet; start one with `chutes jobs start CHUTE NAME --json '{...}'`.", err=True)
    for job in jobs:
        typer.echo(f"{job['short']}\t{job['chute']}\t{job['name']}\t{job['status']}\t{job['created_at']}")


def show_logs(
    job_id: IdArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
    tail: Annotated[int, typer.Option(help="Lines to show from the end of the log.", min=0)] = 1000,
    host: HostOpt = None,
    key: KeyOpt = None,
) -> None:
    """Print a job's log; --follow streams it until the job ends."""
    try:
        print_stream(host, key, lambda c: c.stream_job_logs(job_id, tail=tail, follow=follow))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def cancel_job(job_id: IdArg, host: HostOpt = None, key: KeyOpt = None) -> None:
    """Cancel a queued or running job: SIGTERM, a grace period, then SIGKILL. Its logs and outputs are kept."""
    from chutes_cli.errors import CLIError

    job = call_host(host, key, lambda c: c.get_job(job_id))
    if job["status"] in FINISHED:
        raise CLIError(f"job {job['short']} already ended ({job['status']}); delete it with `chutes jobs delete`")
    answer = call_host(host, key, lambda c: c.cancel_job(job["id"]))
    typer.echo(f"job {job['short']}: {answer.get('status')}", err=True)


def delete_job(job_id: IdArg, host: HostOpt = None, key: KeyOpt = None) -> None:
    """Delete a finished job, its log and its outputs (freeing your quota)."""
    from chutes_cli.errors import CLIError

    job = call_host(host, key, lambda c: c.get_job(job_id))
    if job["status"] not in FINISHED:
        raise CLIError(f"job {job['short']} is {job['status']}; cancel it first with `chutes jobs cancel`")
    call_host(host, key, lambda c: c.cancel_job(job["id"]))
    typer.echo(f"Deleted job {job['short']}.", err=True)


def download_outputs(
    job_id: IdArg,
    to: Annotated[
        Path | None, typer.Option("--to", help="Directory to write into [default: ./JOB_ID].", show_default=False)
    ] = None,
    host: HostOpt = None,
    key: KeyOpt = None,
) -> None:
    """Download every file the job wrote to its output_dir."""
    from chutes_cli.errors import CLIError

    job = call_host(host, key, lambda c: c.get_job(job_id))
    target = to or Path(job["short"])
    if not job.get("outputs"):
        raise CLIError(f"job {job['short']} ({job['status']}) has no output files")

    def fetch(client) -> None:
        for output in client.job_outputs(job["id"]):
            path = target / output["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".part")
            with open(partial, "wb") as f:
                for chunk in client.download_output(job["id"], output["path"]):
                    f.write(chunk)
            partial.replace(path)
            typer.echo(str(path))

    call_host(host, key, fetch)


# (name, command): `run` runs here, the rest on the host; the old `chutes job` group gets them all too.
COMMANDS = (
    ("run", run_job),
    ("start", start_job),
    ("get", get_job),
    ("list", list_jobs),
    ("logs", show_logs),
    ("cancel", cancel_job),
    ("download", download_outputs),
    ("delete", delete_job),
)
OLD_NAME_NOTE = "note: `chutes job` is now `chutes jobs` (same commands); use `chutes jobs` in scripts and docs"


def note_old_name() -> None:
    """Says, on stderr, that `chutes job` is the old name of `chutes jobs`."""
    typer.echo(OLD_NAME_NOTE, err=True)


def build_group(help_text: str) -> typer.Typer:
    """Returns a Typer group holding every jobs command."""
    group = typer.Typer(help=help_text, no_args_is_help=True)
    for name, command in COMMANDS:
        group.command(name)(command)
    return group


def register(app: typer.Typer) -> None:
    app.add_typer(
        build_group("Run a chute's jobs: `run` one here, or start|get|logs|cancel|list|download|delete on the host."),
        name="jobs",
    )
    app.add_typer(build_group("Old name of `chutes jobs`; use that."), name="job", hidden=True, callback=note_old_name)

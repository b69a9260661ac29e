"""`chutes chutes list|get|delete|logs|scale`: manage your deployments on the configured host."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from chutes_cli.hostcalls import HostOpt, JsonOpt, KeyOpt, call_host, print_stream

NameArg = Annotated[str, typer.Argument(help="The chute's name (or USER-NAME slug).", show_default=False)]


def list_chutes(
    host: HostOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
    limit: Annotated[int | None, typer.Option("--limit", help="Show at most this many.", min=1)] = None,
) -> None:
    """List your chutes on the host with their phase and URL."""
    chutes = call_host(host, key, lambda c: c.list_chutes())
    if limit is not None:
        chutes = chutes[:limit]
    if as_json:
        typer.echo(json.dumps(chutes, indent=2))
        return
    if not chutes:
        typer.echo("No chutes yet; deploy one with `chutes deploy my_chute:chute`.", err=True)
    for chute in chutes:
        ready = sum(1 for i in chute["instances"] if i["phase"] == "ready")
        access = "public" if chute["public"] else "private"
        typer.echo(
            f"{chute['name']}\tv{chute['version']}\t{chute['phase']}\t{ready}/{chute['max_instances']} ready"
            f"\t{access}\t{chute['url']}"
        )


def get_chute(name: NameArg, host: HostOpt = None, key: KeyOpt = None, as_json: JsonOpt = False) -> None:
    """Show a chute's status, URL, instances and cords."""
    chute = call_host(host, key, lambda c: c.get_chute(name))
    if as_json:
        typer.echo(json.dumps(chute, indent=2))
        return
    typer.echo(
        f"{chute['slug']}  version {chute['version']}  {chute['phase']}  {'public' if chute['public'] else 'private'}"
    )
    typer.echo(f"url: {chute['url']}")
    if chute.get("error"):
        typer.echo(f"error ({chute.get('failed_phase')}): {chute['error']}")
        for line in (chute.get("log_tail") or "").splitlines()[-10:]:
            typer.echo(f"  | {line}")
    if chute["phase"] == "cold":
        typer.echo("scaled to zero: no instance runs; the next request starts one and waits for it")
    for inst in chute["instances"]:
        if inst.get("pod"):  # a kubernetes host: Kubernetes says why a pod waits, GPUs or not
            line = (
                f"instance {inst['index']}: {inst['phase']}  pod {inst['pod']} on {inst.get('node') or '(no node yet)'}"
            )
            line += f"  version {inst.get('version')}  restarts {inst['restarts']}"
            typer.echo(line + (f"  ({inst['waiting_for']})" if inst.get("waiting_for") else ""))
            continue
        if inst["phase"] == "pending":
            typer.echo(f"instance {inst['index']}: pending  waiting for GPUs: {inst.get('waiting_for')}")
            continue
        where = f"port {inst['port']}" if inst.get("port") else "host-only socket"
        line = f"instance {inst['index']}: {inst['phase']}  {where}  restarts {inst['restarts']}"
        gpus = inst.get("gpus") or []
        if gpus:
            names = ", ".join(dict.fromkeys(f"{g['name']} {g['memory_gb']:.0f} GB" for g in gpus))
            line += f"  gpus {','.join(str(g['index']) for g in gpus)} ({names})"
        typer.echo(line)
    for cord in chute["cords"]:
        typer.echo(f"cord {cord['method']} {cord['path']}{'  (stream)' if cord['stream'] else ''}")


def delete_chute(
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    host: HostOpt = None,
    key: KeyOpt = None,
) -> None:
    """Stop a chute and delete it from the host, files and logs included."""
    if not yes and not typer.confirm(f"Delete chute {name!r} and its logs?", err=True):
        raise typer.Exit(1)
    result = call_host(host, key, lambda c: c.delete_chute(name))
    typer.echo(f"Deleted {result['deleted']}.", err=True)


def show_logs(
    name: NameArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    tail: Annotated[int, typer.Option(help="Lines to show from the end of each log.", min=0)] = 100,
    host: HostOpt = None,
    key: KeyOpt = None,
) -> None:
    """Print the build log and each instance's log; --follow streams new lines."""

    try:
        print_stream(host, key, lambda c: c.stream_logs(name, tail=tail, follow=follow))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def scale_chute(
    name: NameArg,
    instances: Annotated[
        int, typer.Argument(help="How many instances to run now, and the fewest the host keeps.", min=1, max=64)
    ],
    host: HostOpt = None,
    key: KeyOpt = None,
) -> None:
    """Set how many instances of a chute run: a floor; the host still adds more on load, never scales it to zero."""
    chute = call_host(host, key, lambda c: c.scale_chute(name, instances))
    pending = [i for i in chute["instances"] if i["phase"] == "pending"]
    waiting = f"; {len(pending)} pending until GPUs free up: {pending[0].get('waiting_for')}" if pending else ""
    typer.echo(f"{chute['slug']}: {instances} instance(s), phase {chute['phase']}{waiting}", err=True)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Manage your deployed chutes on the host.", no_args_is_help=True)
    group.command("list")(list_chutes)
    group.command("get")(get_chute)
    group.command("delete")(delete_chute)
    group.command("logs")(show_logs)
    group.command("scale")(scale_chute)
    app.add_typer(group, name="chutes")

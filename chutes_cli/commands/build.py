"""`chutes build`: turn a chute into a container image through the Docker Engine API."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

RefArgument = Annotated[
    str,
    typer.Argument(help="The chute: module:attr, path/to/file.py:attr, or module (attr 'chute').", show_default=False),
]


def build_chute(
    ref: RefArgument,
    tag: Annotated[
        str | None, typer.Option("--tag", "-t", help="Image tag (default: the Image's user/name:tag).")
    ] = None,
    base_image: Annotated[
        str | None,
        typer.Option(help="Image to start FROM (default: the Image's from_base, $CHUTES_BASE_IMAGE, or chutes-base)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the Dockerfile and context; no engine needed.")
    ] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild every layer.")] = False,
    push: Annotated[
        str | None, typer.Option(help="Registry to tag and push to after the build, e.g. 127.0.0.1:5000.")
    ] = None,
    context: Annotated[
        Path | None, typer.Option(help="Build context folder (default: the folder the chute's module imports from).")
    ] = None,
    python: Annotated[
        str | None, typer.Option(help="Python X.Y of the base image, for the wheels (default: this Python's).")
    ] = None,
    local: Annotated[
        bool, typer.Option("--local", help="Accepted for the Chutes SDK: builds here are always local.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Accepted for the Chutes SDK: a build here always runs to its end.")
    ] = False,
) -> None:
    """Build a chute's image: requirements first, code last, so code edits rebuild in about a second.

    Example: chutes build my_chute:chute --tag me/my-chute:dev
    """
    from chutes.image import AptInstall, RunCommand
    from chutes.loader import load_chute
    from chutes_build.context import check_size, format_size
    from chutes_build.plan import plan_build
    from chutes_build.python import python_notes
    from chutes_cli.errors import fail_usage

    if python is not None and not is_python_version(python):
        fail_usage(f"--python {python!r} is not a Python version like 3.11")
    chute = load_chute(ref)
    for line in chute.ignored:
        typer.echo(f"Note: ignored here: {line}", err=True)
    if isinstance(chute.image, str):
        typer.echo(f"Nothing to build: chute {chute.slug!r} uses the prebuilt image {chute.image!r}.", err=True)
        return
    if base_image is None and chute.image.base_image is None:
        base_image = os.environ.get("CHUTES_BASE_IMAGE") or None
    client = None
    if not dry_run:
        from chutes_build.engine import connect_engine

        client = connect_engine()  # fail fast, before any wheel is fetched
    choice = choose_build_python(client, python, chute.image, base_image)
    for line in python_notes(chute.image, base_image):
        typer.echo(f"Note: {line}", err=True)
    typer.echo(f"Note: {choice.describe()}", err=True)
    if dry_run:
        plan = plan_build(
            chute, ref, context_dir=context, tag=tag, base_image=base_image, python=choice, fetch_wheels=False
        )
    else:
        from chutes_cli.progress import Progress

        # A cold build downloads every wheel first (many seconds): say what is being fetched.
        with Progress("preparing the build context and its wheels", unit="steps") as progress:
            plan = plan_build(
                chute,
                ref,
                context_dir=context,
                tag=tag,
                base_image=base_image,
                python=choice,
                on_fetch_line=lambda line: show_fetch_line(progress, line),
            )
    warning = check_size(plan.context)
    if warning:
        typer.echo(f"Warning: {warning}", err=True)
    if client is None:
        sys.stdout.write(plan.dockerfile)
        files = plan.context.files
        typer.echo(
            f"\n# build context: {plan.context.root} ({len(files)} files, {format_size(plan.context.user_bytes)})"
        )
        for line in plan.context.listing():
            typer.echo(f"#   {line}")
        return

    from chutes_build.engine import build_image, push_image, require_image

    require_image(client, plan.base_image)
    needs_network = any(isinstance(d, AptInstall | RunCommand) for d in plan.image.directives)
    result = build_image(
        client,
        plan.context.write_tar,
        plan.tag,
        no_cache=no_cache,
        network=None if needs_network else "none",
        on_line=show_build_line,
    )
    typer.echo(
        f"Built {plan.tag} ({result.image_id[:19]}) in {result.seconds:.1f} s; "
        f"{result.cached_steps} of {len(result.steps)} steps from cache.",
        err=True,
    )
    if push:
        from chutes_cli.progress import Progress

        with Progress(f"pushing {plan.tag} to {push}") as progress:
            pushed = push_image(client, plan.tag, push, on_chunk=PushDisplay(progress))
        typer.echo(f"Pushed {pushed}", err=True)
        typer.echo(pushed)
    else:
        typer.echo(plan.tag)


def choose_build_python(client, flag: str | None, image, base_image: str | None):
    """Returns the PythonChoice of a build; with an engine and nothing else to go by, asks the base image."""
    from chutes_build.dockerfile import DEFAULT_BASE_IMAGE
    from chutes_build.python import PythonChoice, ask_base_python, choose_python
    from chutes_cli.errors import CLIError

    choice = choose_python(flag, image, base_image, DEFAULT_BASE_IMAGE)
    if choice.known or client is None:
        if not choice.known:
            return PythonChoice(choice.version, f"{choice.reason}; this dry run assumes this Python's", False)
        return choice
    from chutes_build.engine import require_image

    base = base_image or image.base_image
    require_image(client, base)
    asked = ask_base_python(client, base)
    if asked is None:
        raise CLIError(
            f"the base image {base} has no python3 (it could not run 'python3 -c ...'); start from an image "
            "with Python 3 and venv (e.g. python:3.11-slim), or install them in a base of your own"
        )
    return PythonChoice(asked, f"asked the base image {base}")


class PushDisplay:
    """Turns the engine's per-layer push messages into one byte count and a status line."""

    def __init__(self, progress) -> None:
        self.progress = progress
        self.layers: dict[str, tuple[int, int]] = {}

    def __repr__(self) -> str:
        return f"PushDisplay({len(self.layers)} layers)"

    def __call__(self, chunk: dict) -> None:
        detail = chunk.get("progressDetail") or {}
        layer, status = chunk.get("id", ""), chunk.get("status", "")
        if layer and detail.get("total"):
            self.layers[layer] = (min(detail.get("current", 0), detail["total"]), detail["total"])
            done = sum(current for current, _ in self.layers.values())
            self.progress.update(completed=done, total=sum(total for _, total in self.layers.values()))
        elif status and status not in ("Preparing", "Waiting", "Pushing"):
            self.progress.update(status=f"{layer} {status}".strip())


def show_fetch_line(progress, line: str) -> None:
    """Shows what pip is fetching now ("Collecting x", "Downloading x.whl (2 MB)") as the status."""
    if line.startswith(("Collecting ", "Downloading ", "Processing ")):
        progress.update(status=line)


def show_build_line(line: str, step: object) -> None:
    """Streams one build-log line to stderr: steps in bold, their output dimmed and indented."""
    if step is not None:
        typer.secho(line.strip(), err=True, bold=True)
    elif line.strip() == "---> Using cache":
        typer.secho("  (cached)", err=True, fg="green")
    elif not line.strip().startswith(("--->", "Removing intermediate container")):
        typer.secho(f"  {line.rstrip()}", err=True, dim=True)


def is_python_version(text: str) -> bool:
    major, _, minor = text.partition(".")
    return major.isdigit() and minor.isdigit()


def register(app: typer.Typer) -> None:
    """Adds `chutes build` and `chutes run-image` to the app."""
    from chutes_cli.commands.run_image import run_image

    app.command("build")(build_chute)
    app.command("run-image")(run_image)

"""`chutes run-image`: run a chute's built image locally, published on 127.0.0.1."""

from __future__ import annotations

import signal
from typing import Annotated

import typer

INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C (128 + SIGINT)


def run_image(
    ref: Annotated[
        str,
        typer.Argument(help="The chute whose image to run: module:attr or path/to/file.py:attr.", show_default=False),
    ],
    tag: Annotated[str | None, typer.Option("--tag", "-t", help="Image to run (default: the chute's image).")] = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 to publish the chute on.", min=1, max=65535)] = 8000,
    env: Annotated[list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE for the container.")] = None,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Start, wait until ready, print the id, exit.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for /_ready.", min=1)] = 60,
) -> None:
    """Run the chute's image with its port bound to 127.0.0.1; GPUs are requested when the
    chute's node selector asks for them and the engine has them.

    Example: chutes run-image my_chute:chute --port 8000
    """
    from chutes.loader import load_chute
    from chutes_build.engine import connect_engine
    from chutes_cli.container import (
        engine_has_gpus,
        image_labels,
        start_chute,
        stop_chute,
        wait_until_ready,
        wanted_gpus,
    )
    from chutes_cli.errors import fail_usage

    variables = {}
    for item in env or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail_usage(f"--env {item!r} must look like KEY=VALUE")
        variables[key] = value
    chute = load_chute(ref)
    image_ref = tag or (chute.image if isinstance(chute.image, str) else chute.image.ref)
    client = connect_engine()
    labels = image_labels(client, image_ref)
    gpus = wanted_gpus(labels)
    if gpus and not engine_has_gpus(client):
        typer.echo(f"Note: the chute asks for {gpus} GPU(s) but the engine has none; running without.", err=True)
        gpus = 0
    running = start_chute(client, image_ref, port=port, env=variables, gpus=gpus)
    try:
        waited = wait_until_ready(running, timeout=timeout)
    except BaseException:
        stop_chute(running)
        raise
    typer.echo(
        f"{chute.slug} ready at {running.url} in {waited:.2f} s (container {running.container.short_id})", err=True
    )
    if detach:
        typer.echo(running.container.id)
        return
    follow_logs(running, stop_chute)


class Terminated(Exception):
    """SIGTERM arrived: a request to stop, which is not a failure."""


def follow_logs(running, stop) -> None:
    """Prints the container's log until Ctrl-C or SIGTERM, then stops and removes it.

    Exits with 130 after Ctrl-C, as an interrupted command does, and with 0 after SIGTERM.
    """

    def on_term(signum, frame) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, on_term)
    code = 0
    try:
        for chunk in running.container.logs(stream=True, follow=True):
            typer.echo(chunk.decode(errors="replace"), nl=False, err=True)
    except KeyboardInterrupt:
        code = INTERRUPTED
    except Terminated:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop(running)
        typer.echo("Stopped.", err=True)
    if code:
        raise typer.Exit(code)

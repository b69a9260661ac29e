"""`chutes deploy`: bundle a chute, upload it to the host, and wait until it serves."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

POLL_SECONDS = 0.25


def deploy_chute(
    ref: Annotated[str, typer.Argument(help="The chute: module:attr or path/to/file.py:attr.", show_default=False)],
    host: Annotated[
        str | None, typer.Option("--host", help="The host's URL [default: config api_url].", show_default=False)
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="API key [default: config api_key].", show_default=False)
    ] = None,
    public: Annotated[
        bool | None,
        typer.Option(
            "--public/--private", help="Open to anyone, or only to your keys [default: private].", show_default=False
        ),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until an instance is ready.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the chute to be ready.", min=1)] = 600,
    image: Annotated[
        str | None,
        typer.Option("--image", help="On a docker host: run this image instead of building one.", show_default=False),
    ] = None,
    context: Annotated[
        Path | None,
        typer.Option(
            "--context", help="Directory to bundle [default: the chute file's directory].", show_default=False
        ),
    ] = None,
    accept_fee: Annotated[
        bool, typer.Option("--accept-fee", help="Accepted for the Chutes SDK; a self-hosted host charges no fee.")
    ] = False,
) -> None:
    """Upload a chute to your host and wait until it is ready; prints its URL.

    Example: chutes deploy my_chute:chute --public
    """
    from chutes_cli.errors import CLIError
    from chutes_host.client import HostAPIError, HostClient

    url, api_key = resolve_host(host, key)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="chutes-deploy-") as tmp:
        bundle, manifest = make_bundle(ref, context, Path(tmp) / "bundle.tar.gz", public=public, image=image)
        size = bundle.stat().st_size
        for line in manifest.get("ignored", []):
            note(f"ignored here: {line}")
        note(f"uploading {manifest['slug']} ({format_size(size)}) to {url}")
        try:
            with HostClient(url, api_key) as client:
                chute = client.deploy(bundle, public=public, progress=upload_progress(size))
                if sys.stderr.isatty():
                    sys.stderr.write("\n")
                if wait:
                    chute = wait_until_ready(client, chute["slug"], timeout=timeout)
        except HostAPIError as exc:
            raise CLIError(str(exc)) from None
    if wait:
        note(f"ready in {time.monotonic() - started:.1f} s")
    typer.echo(chute["url"])
    example = next((c for c in chute.get("cords", []) if c.get("path")), None)
    if example:
        note(f"try: chutes invoke {example['path']} --chute {chute['username']}/{chute['name']}")


def resolve_host(host: str | None, key: str | None) -> tuple[str, str | None]:
    """Returns the host URL and key: options first, then the CLI config."""
    from chutes_cli.config import load_config
    from chutes_cli.errors import CLIError

    config = load_config()
    url = host or config.api_url
    if not url:
        raise CLIError(
            "no host to deploy to: pass --host http://HOST:8080, or set it once with "
            "`chutes config set api_url http://HOST:8080`.",
            exit_code=2,
        )
    return url, key or config.api_key


def make_bundle(
    ref: str, context: Path | None, target: Path, *, public: bool | None, image: str | None = None
) -> tuple[Path, dict]:
    """Loads the chute, and writes its manifest and its directory's files as a deploy bundle."""
    from chutes.loader import load_chute
    from chutes_cli.build.context import collect_context
    from chutes_host.bundle import pack_bundle

    root, entrypoint = locate_entrypoint(ref, context)
    chute = load_chute(ref)
    manifest = dict(chute.manifest(), entrypoint=entrypoint, build_image=not isinstance(chute.image, str))
    if manifest["build_image"]:
        from chutes_cli.build.recipe import image_to_data

        # the host builds from this data and never imports the chute's module
        manifest["image_recipe"] = image_to_data(chute.image)
    if image:
        manifest["deploy_image"] = image
    if public is not None:
        manifest["public"] = public
    files = collect_context(root).files
    requirements = root / "requirements.txt"
    reqs = requirements.read_text() if requirements.is_file() else None
    pack_bundle(target, manifest=manifest, files=[(f.path, f.rel) for f in files], requirements=reqs)
    return target, manifest


def locate_entrypoint(ref: str, context: Path | None) -> tuple[Path, str]:
    """Returns the directory to bundle and the `module:attr` that names the chute inside it."""
    from chutes.loader import is_file_target, split_ref
    from chutes_cli.errors import CLIError

    target, attr = split_ref(ref)
    if is_file_target(target):
        path = Path(target).resolve()
        root = (context or path.parent).resolve()
        try:
            rel = path.relative_to(root)
        except ValueError:
            raise CLIError(f"{target} is not inside the context directory {root}; pass --context.") from None
        return root, ".".join(rel.with_suffix("").parts) + f":{attr}"
    root = (context or Path.cwd()).resolve()
    base = root.joinpath(*target.split("."))
    if not (base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()):
        raise CLIError(
            f"module {target!r} is not a file under {root}; run `chutes deploy` from the chute's "
            "directory, or pass --context DIR.",
            exit_code=2,
        )
    return root, f"{target}:{attr}"


def wait_until_ready(client, slug: str, *, timeout: float) -> dict:  # noqa: ANN001
    """Polls the chute until it is ready, printing each phase; raises CLIError if it fails."""
    from chutes_cli.errors import CLIError

    deadline = time.monotonic() + timeout
    seen = None
    while True:
        chute = client.get_chute(slug)
        phase = chute["phase"]
        if phase != seen:
            note(phase)
            seen = phase
        if phase == "ready":
            return chute
        if phase == "failed":
            tail = chute.get("log_tail") or ""
            raise CLIError(
                f"the chute failed while {chute.get('failed_phase') or 'starting'}: {chute.get('error')}\n"
                f"--- last log lines ---\n{tail}\n--- see all with `chutes chutes logs {slug}`"
            )
        if time.monotonic() > deadline:
            raise CLIError(
                f"the chute was not ready after {timeout:g} s (phase {phase}); see `chutes chutes logs {slug}`."
            )
        time.sleep(POLL_SECONDS)


def upload_progress(total: int):  # noqa: ANN201
    sent = 0

    def report(n: int) -> None:
        nonlocal sent
        sent += n
        if sys.stderr.isatty():
            sys.stderr.write(f"\r  {format_size(sent)} / {format_size(total)}")
            sys.stderr.flush()

    return report


def note(text: str) -> None:
    typer.echo(f"  {text}", err=True)


def format_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy_chute)

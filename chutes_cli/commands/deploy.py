"""`chutes deploy`: bundle a chute, upload it to the host, and wait until it serves."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from chutes_cli.hostcalls import HostOpt, KeyOpt

POLL_SECONDS = 0.25
CHECK_EVERY_BYTES = 1 << 20  # how often packing compares the bundle's size with the host's limit


def deploy_chute(
    ref: Annotated[str, typer.Argument(help="The chute: module:attr or path/to/file.py:attr.", show_default=False)],
    host: HostOpt = None,
    key: KeyOpt = None,
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
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print what a kubernetes host would apply (with -o yaml); upload nothing."),
    ] = False,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="With --dry-run: 'yaml' (the manifests).", show_default=False)
    ] = None,
    namespace: Annotated[
        str, typer.Option(help="With --dry-run: the kubernetes host's namespace.", show_default=True)
    ] = "chutes",
    registry: Annotated[
        str | None,
        typer.Option(help="With --dry-run: the registry a kubernetes host pushes built images to.", show_default=False),
    ] = None,
) -> None:
    """Upload a chute to your host and wait until it is ready; prints its URL.

    Example: chutes deploy my_chute:chute --public
    """
    from chutes_cli.errors import CLIError
    from chutes_cli.host_client import HostAPIError, HostClient
    from chutes_cli.progress import Progress

    if dry_run or output is not None:
        return print_manifests(ref, context, output=output, image=image, namespace=namespace, registry=registry)
    url, api_key = resolve_host(host, key)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="chutes-deploy-") as tmp, HostClient(url, api_key) as client:
        try:
            limits = client.limits()  # first: an unreachable host fails before any packing
            prepared = prepare_bundle(ref, context, public=public, image=image)
            if prepared.stood_in:
                names = ", ".join(sorted(prepared.stood_in))
                note(f"stood in for {names}: not installed here, but named in requirements.txt (the host installs it)")
            for line in prepared.manifest.get("ignored", []):
                note(f"ignored here: {line}")
            check_limits(prepared, limits, url)
            bundle = write_bundle(prepared, Path(tmp) / "bundle.tar.gz", limits=limits, url=url)
            size = bundle.stat().st_size
            slug = prepared.manifest["slug"]
            with Progress(f"uploading {slug} to {url}", total=size) as progress:
                chute = client.deploy(bundle, public=public, progress=progress.advance)
            if wait:
                chute = wait_until_ready(client, chute["slug"], timeout=timeout)
        except HostAPIError as exc:
            raise CLIError(str(exc)) from None
    if wait:
        note(f"ready in {time.monotonic() - started:.1f} s")
    typer.echo(chute["url"])
    if prepared.chute.cords:
        note(f"try: {try_command(prepared.chute, chute, host=host)}")
        if key and not chute.get("public"):
            note("(it needs your key: put it in CHUTES_API_KEY, or set it once with `chutes config set api_key KEY`)")


def print_manifests(
    ref: str, context: Path | None, *, output: str | None, image: str | None, namespace: str, registry: str | None
) -> None:
    """Prints the Kubernetes manifests a kubernetes host would apply for this chute's first version."""
    from chutes_cli.errors import CLIError
    from chutes_host.deploy.k8s_render import PodShape, RenderError, render_manifests, to_yaml
    from chutes_host.deploy.spec import DeploymentSpec

    if output != "yaml":
        raise CLIError(
            "--dry-run prints the Kubernetes manifests: pass -o yaml (and -o yaml needs --dry-run)", exit_code=2
        )
    manifest = prepare_bundle(ref, context, public=None, image=image).manifest
    slug = manifest["slug"]
    ref_to_run = image or (None if manifest.get("build_image") else manifest.get("image"))
    if ref_to_run is None and registry:
        ref_to_run = f"{registry.rstrip('/')}/chutes/{slug}:v1"
    if ref_to_run is None:
        raise CLIError(
            "this chute's image is built from its recipe: pass --registry HOST:PORT (where the host pushes it) "
            "or --image REF to see the manifests",
            exit_code=2,
        )
    spec = DeploymentSpec(
        slug=slug,
        name=manifest["name"],
        owner_id=0,
        owner_name=manifest["username"],
        version=1,
        directory=Path(slug),
        entrypoint=manifest["entrypoint"],
        public=bool(manifest.get("public")),
        max_instances=manifest.get("max_instances") or 1,
        manifest=manifest,
    )
    try:
        objects = render_manifests(spec, image=ref_to_run, replicas=1, shape=PodShape(namespace=namespace))
    except RenderError as exc:
        raise CLIError(str(exc)) from None
    typer.echo(to_yaml(objects), nl=False)


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


@dataclass
class PreparedBundle:
    """What goes into a deploy bundle: the loaded chute, its manifest, files and requirements."""

    chute: Any
    manifest: dict
    root: Path
    files: list
    requirements: str | None
    stood_in: list[str]

    def __repr__(self) -> str:
        return f"PreparedBundle({self.manifest['slug']!r}, {len(self.files)} files, stood_in={self.stood_in})"

    @property
    def unpacked_bytes(self) -> int:
        return sum(f.size for f in self.files)


def make_bundle(
    ref: str, context: Path | None, target: Path, *, public: bool | None, image: str | None = None
) -> tuple[Path, dict]:
    """Loads the chute, and writes its manifest and its directory's files as a deploy bundle."""
    prepared = prepare_bundle(ref, context, public=public, image=image)
    return write_bundle(prepared, target), prepared.manifest


def prepare_bundle(ref: str, context: Path | None, *, public: bool | None, image: str | None = None) -> PreparedBundle:
    """Loads the chute (standing in for its missing requirements) and lists what to bundle."""
    from chutes.exceptions import ChuteLoadError
    from chutes.loader import load_chute
    from chutes_build.context import collect_context
    from chutes_cli.errors import CLIError
    from chutes_cli.standins import stand_ins_for

    root, entrypoint = locate_entrypoint(ref, context)
    requirements = root / "requirements.txt"
    try:
        with stand_ins_for(requirements) as stood_in:
            chute = load_chute(ref)
    except ChuteLoadError as exc:
        raise CLIError(explain_load_error(str(exc), stood_in, has_requirements=requirements.is_file())) from None
    manifest = dict(chute.manifest(), entrypoint=entrypoint, build_image=not isinstance(chute.image, str))
    if manifest["build_image"]:
        from chutes_build.recipe import image_to_data

        # the host builds from this data and never imports the chute's module
        manifest["image_recipe"] = image_to_data(chute.image)
    if image:
        manifest["deploy_image"] = image
    if public is not None:
        manifest["public"] = public
    reqs = requirements.read_text() if requirements.is_file() else None
    return PreparedBundle(chute, manifest, root, collect_context(root).files, reqs, list(stood_in))


def explain_load_error(message: str, stood_in: list[str], *, has_requirements: bool) -> str:
    """Adds to a load error how deploy treats missing modules."""
    if "ModuleNotFoundError" in message:
        where = "requirements.txt" if has_requirements else "a requirements.txt beside the chute"
        message += (
            f"\n\nA module that only the host needs may stay uninstalled here if {where} names its "
            "package: deploy then stands in for it while it reads the chute."
        )
    elif stood_in:
        message += (
            f"\n\nNote: {', '.join(stood_in)} stood in for packages not installed here; a cord's signature "
            "cannot use their types (install them here, or annotate with built-in types)."
        )
    return message


def check_limits(prepared: PreparedBundle, limits: dict | None, url: str) -> None:
    """Refuses, before packing, a bundle the host would refuse for its files' count or size."""
    from chutes_build.context import format_size
    from chutes_cli.errors import CLIError

    if not limits:
        return
    count = len(prepared.files) + 1 + (prepared.requirements is not None)
    if count > limits["max_bundle_files"]:
        raise CLIError(
            f"the chute's directory {prepared.root} holds {count} files; the host at {url} takes at most "
            f"{limits['max_bundle_files']}. List what the chute does not need in .chutesignore."
        )
    if prepared.unpacked_bytes > limits["max_unpacked_bytes"]:
        raise CLIError(
            f"the chute's directory {prepared.root} holds {format_size(prepared.unpacked_bytes)}; the host at "
            f"{url} unpacks at most {format_size(limits['max_unpacked_bytes'])}. {largest_files(prepared)}"
        )


def write_bundle(prepared: PreparedBundle, target: Path, *, limits: dict | None = None, url: str = "") -> Path:
    """Packs the bundle, showing progress; stops as soon as it outgrows the host's upload limit."""
    from chutes_build.context import format_size
    from chutes_cli.errors import CLIError
    from chutes_cli.progress import Progress
    from chutes_host.deploy.bundle import pack_bundle

    limit = limits["max_bundle_bytes"] if limits else None

    def too_big() -> CLIError:
        return CLIError(
            f"the bundle of {prepared.root} is larger than the {format_size(limit)} the host at {url} accepts, "
            f"so nothing was uploaded. {largest_files(prepared)}"
        )

    unchecked = 0

    with Progress(f"packing {prepared.root}", total=prepared.unpacked_bytes) as progress:

        def on_read(n: int) -> None:
            nonlocal unchecked
            progress.advance(n)
            unchecked += n
            if limit is not None and unchecked >= CHECK_EVERY_BYTES:
                unchecked = 0
                if target.stat().st_size > limit:
                    raise too_big()

        files = [(f.path, f.rel) for f in prepared.files]
        pack_bundle(
            target, manifest=prepared.manifest, files=files, requirements=prepared.requirements, on_read=on_read
        )
    if limit is not None and target.stat().st_size > limit:
        target.unlink()
        raise too_big()
    return target


def largest_files(prepared: PreparedBundle) -> str:
    """Names the largest files, and how to leave them out."""
    from chutes_build.context import format_size

    biggest = sorted(prepared.files, key=lambda f: (-f.size, f.rel))[:5]
    listed = "\n".join(f"  {format_size(f.size):>10}  {f.rel}" for f in biggest)
    return (
        "Leave data and model weights out of the bundle (list them in .chutesignore; load them at "
        f"startup instead). The largest files:\n{listed}"
    )


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


def wait_until_ready(client, slug: str, *, timeout: float) -> dict:
    """Polls the chute until it is ready, printing each phase; raises CLIError if it fails."""
    from chutes_cli.errors import CLIError

    deadline = time.monotonic() + timeout
    seen = None
    while True:
        chute = client.get_chute(slug)
        phase = chute["phase"]
        line = progress_line(chute)
        if line != seen:
            note(line)
            seen = line
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


def progress_line(chute: dict) -> str:
    """Returns the phase, with why its instances wait (e.g. the cluster scheduler's reason), as deploy shows it."""
    reasons = []
    for inst in chute.get("instances") or []:
        why = inst.get("waiting_for")
        if why and why not in reasons:
            reasons.append(why)
    return chute["phase"] + (f" ({'; '.join(reasons)})" if reasons else "")


def try_command(chute: Any, deployed: dict, *, host: str | None) -> str:
    """Returns a `chutes invoke` command that calls the deployed chute's first cord."""
    from chutes_cli.example_call import example_command

    target = ["--chute", f"{deployed['username']}/{deployed['name']}"]
    if host:
        target += ["--host", host]
    return example_command(chute.cords[0], target)


def note(text: str) -> None:
    typer.echo(f"  {text}", err=True)


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy_chute)

"""A build plan: the loaded chute, its Dockerfile and its complete build context, before any engine."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chutes.image import Image, PipInstall
from chutes_build.context import BuildContext, collect_context
from chutes_build.dockerfile import ChuteSpec, render_dockerfile, render_dockerignore
from chutes_build.errors import BuildError
from chutes_build.ignore import DEFAULT_PATTERNS, IGNORE_FILE


@dataclass
class BuildPlan:
    """Everything `chutes build` sends to the engine: tag, Dockerfile and context."""

    tag: str
    spec: ChuteSpec
    image: Image
    dockerfile: str
    context: BuildContext
    base_image: str
    python: Any = None  # the PythonChoice the wheels were fetched for

    def __repr__(self) -> str:
        return f"BuildPlan(tag={self.tag!r}, base={self.base_image!r}, files={len(self.context.files)})"


def module_name_for(chute: Any, ref: str) -> tuple[str, Path]:
    """Returns the module name of the file defining the chute, and the folder it imports from."""
    from chutes.loader import split_ref

    target, _attr = split_ref(ref)
    module = None
    if not target.endswith(".py") and "/" not in target:
        module = sys.modules.get(target)
    path = Path(module.__file__) if module is not None and module.__file__ else Path(target)
    path = path.resolve()
    if not path.is_file():
        raise BuildError(f"cannot find the file that defines {ref!r}; pass it as path/to/file.py:attr")
    parts = [] if path.name == "__init__.py" else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts), folder


def relative_module(path_root: Path, module: str, context_root: Path) -> str:
    """Re-expresses `module` (importable from `path_root`) relative to the build context."""
    rel = path_root.resolve().relative_to(context_root.resolve()) if path_root != context_root else Path()
    prefix = [p for p in rel.parts]
    for part in prefix:
        if not part.isidentifier():
            raise BuildError(
                f"the chute's module sits in {str(rel)!r} under the build context, which is not a "
                "Python package path; pass --context pointing at the folder that holds the module"
            )
    return ".".join([*prefix, module])


def spec_for(chute: Any, module: str, attr: str) -> ChuteSpec:
    """Reads the chute's slug, cords and node selector into a ChuteSpec."""
    cords = tuple(
        {"name": c.name, "path": c.path, "method": c.method, "stream": c.stream, "passthrough": c.passthrough}
        for c in chute.cords
    )
    selector = chute.node_selector.model_dump(mode="json") if chute.node_selector is not None else {}
    return ChuteSpec(chute.slug, module, attr, cords, selector)


def plan_build(
    chute: Any,
    ref: str,
    *,
    context_dir: Path | None = None,
    tag: str | None = None,
    base_image: str | None = None,
    python_version: str | None = None,
    python: Any = None,
    fetch_wheels: bool = True,
    on_fetch_line: Callable[[str], None] | None = None,
) -> BuildPlan:
    """Takes a loaded chute and its reference, and returns a complete build plan.

    With `fetch_wheels=False` (dry runs) wheels are listed by name but not downloaded;
    `on_fetch_line` gets pip's lines while wheels download.
    """
    from chutes.loader import split_ref

    image = chute.image
    if isinstance(image, str):
        raise BuildError(
            f"chute {chute.slug!r} uses the prebuilt image {image!r}: there is nothing to build. "
            "Describe the image with chutes.image.Image to build it."
        )
    module, import_root = module_name_for(chute, ref)
    root = (context_dir or import_root).resolve()
    if not import_root.resolve().is_relative_to(root):
        raise BuildError(
            f"the chute's code in {str(import_root)!r} is outside the build context {str(root)!r}; "
            "pass a --context that contains it"
        )
    _target, attr = split_ref(ref)
    spec = spec_for(chute, relative_module(import_root, module, root), attr)
    return plan_image(
        spec,
        image,
        root,
        tag=tag or image.ref,
        base_image=base_image,
        python_version=python_version,
        python=python,
        fetch_wheels=fetch_wheels,
        on_fetch_line=on_fetch_line,
    )


def plan_image(
    spec: ChuteSpec,
    image: Image,
    root: Path,
    *,
    tag: str,
    base_image: str | None = None,
    python_version: str | None = None,
    python: Any = None,
    fetch_wheels: bool = True,
    untrusted: bool = False,
    on_fetch_line: Callable[[str], None] | None = None,
) -> BuildPlan:
    """Takes a chute's spec, its Image and the folder of its code, and returns a build plan.

    Needs no loaded chute, so a host builds from the deploy manifest without importing tenant code;
    `untrusted` then refuses requirements that are not plain specifiers (URLs, pip options);
    `on_fetch_line` gets pip's lines while wheels download.
    """
    from chutes_build.wheel import build_runtime_wheel, runtime_pins
    from chutes_build.wheel import fetch_wheelhouse as fetch

    def fetch_wheelhouse(reqs: list[str], *, python_version: str) -> Path:
        return fetch(reqs, python_version=python_version, on_line=on_fetch_line)

    from chutes_build.dockerfile import DEFAULT_BASE_IMAGE
    from chutes_build.python import choose_python
    from chutes_build.sdk import sdk_requirements

    python = python or choose_python(python_version, image, base_image, DEFAULT_BASE_IMAGE)
    python_version = python.version
    if base_image is None and image.base_image is None and image.python_version:
        base_image = f"python:{image.python_version}-slim"  # Image.with_python() with no from_base()
    context = collect_context(root)
    check_sources(image, context)

    with tempfile.TemporaryDirectory(prefix="chutes-wheel-") as wheel_dir:
        wheel = build_runtime_wheel(Path(wheel_dir))
        context.generated[f".chutes/{wheel.name}"] = wheel.read_bytes()
    pins = runtime_pins()
    add_wheelhouse(context, "runtime", pins, python_version, fetch_wheels, fetch_wheelhouse)
    # The platform SDK's own dependencies the chute's code imports: a fixed list of plain names, found by
    # a scan of lines (no parse, nothing run), so a host builds them into a tenant's image too.
    sdk = sdk_requirements(context.files)
    if sdk:
        add_wheelhouse(context, "sdk", sdk_pins(sdk), python_version, fetch_wheels, fetch_wheelhouse)
    pip_steps = [d for d in image.directives if isinstance(d, PipInstall)]
    for number, step in enumerate(pip_steps, start=1):
        reqs = list(step.packages) or read_requirements(root / step.requirements_file)
        if untrusted:
            check_plain_requirements(reqs, step.requirements_file)
        add_wheelhouse(context, f"pip-{number}", reqs, python_version, fetch_wheels, fetch_wheelhouse)

    dockerfile = render_dockerfile(
        spec, image, runtime_wheel=wheel.name, base_image=base_image, python_version=python_version, sdk=sdk
    )
    ignore_lines = list(DEFAULT_PATTERNS)
    if (root / IGNORE_FILE).is_file():
        ignore_lines += (root / IGNORE_FILE).read_text(encoding="utf-8").splitlines()
    context.generated["Dockerfile"] = dockerfile.encode()
    context.generated[".dockerignore"] = render_dockerignore(ignore_lines).encode()
    chosen_base = dockerfile.split("\nFROM ", 1)[1].split("\n", 1)[0]
    return BuildPlan(tag, spec, image, dockerfile, context, chosen_base, python)


def check_plain_requirements(reqs: list[str], source: str | None) -> None:
    """Fails on a requirement a host must not hand to pip: an option, a URL or a path."""
    from chutes.image import PIP_PATTERN

    where = f" in {source}" if source else ""
    for req in reqs:
        if req.startswith("-") or "@" in req or not PIP_PATTERN.match(req):
            raise BuildError(
                f"requirement {req!r}{where} is not a plain specifier (like 'numpy>=1.26'); a host fetches only "
                "named wheels from its index, so publish the package or build the image yourself and deploy --image"
            )


def sdk_pins(names: list[str]) -> list[str]:
    """Pins SDK dependencies (and theirs) to the versions installed here, as the runtime's are; one not
    installed here (a host without `chutes[sdk]`) goes by its plain name, the index's newest."""
    from chutes_build.wheel import canonical_name, runtime_pins

    pins = runtime_pins(names)
    pinned = {canonical_name(pin.partition("==")[0]) for pin in pins}
    return pins + [name for name in names if canonical_name(name) not in pinned]


def add_wheelhouse(context, folder, reqs, python_version, fetch, fetch_wheelhouse) -> None:
    """Adds the wheels for `reqs` to the context under .chutes/wheels/<folder>/."""
    prefix = f".chutes/wheels/{folder}/"
    if not fetch:
        context.generated[prefix + "requirements.txt"] = "".join(f"{r}\n" for r in reqs).encode()
        return
    house = fetch_wheelhouse(reqs, python_version=python_version)
    for path in sorted(house.iterdir()):
        context.generated[prefix + path.name] = path


def read_requirements(path: Path) -> list[str]:
    """Reads requirement lines from a requirements file, skipping comments and blanks."""
    lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line]


def check_sources(image: Image, context: BuildContext) -> None:
    """Fails when a path the Image copies or reads is missing from the (filtered) context."""
    from chutes.image import Add

    for d in image.directives:
        src = d.src if isinstance(d, Add) else getattr(d, "requirements_file", None)
        if src and not context.has(src):
            raise BuildError(
                f"{src!r} (from the chute's Image) is not in the build context {str(context.root)!r}: "
                f"it is missing or excluded by {IGNORE_FILE}"
            )

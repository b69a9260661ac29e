"""Wheels for the image: the `chutes` runtime from this checkout, and its dependencies.

The runtime wheel is packed directly from the imported `chutes` package (runtime only, no CLI or
host), byte-identical for identical sources, so an unchanged runtime is a cached layer. The
dependencies are fetched on the host with pip's own configuration into a cached wheelhouse, and
installed in the image with `--no-index`: the build needs no network and no TLS inside `RUN`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

from chutes_build.errors import BuildError

# What the runtime imports; kept equal to pyproject's dependencies by a test.
RUNTIME_REQUIREMENTS = (
    "fastapi>=0.110",
    "pydantic>=2.6",
    "uvicorn[standard]>=0.29",
    "httpx>=0.27",
    "python-multipart>=0.0.9",
    "jsonschema>=4.18",
)
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def build_runtime_wheel(out_dir: Path) -> Path:
    """Packs the imported `chutes` package into `out_dir`, and returns the wheel's path."""
    import chutes

    package_dir = Path(chutes.__file__).resolve().parent
    version = chutes.__version__
    dist_info = f"chutes-{version}.dist-info"
    members: list[tuple[str, bytes]] = []
    for path in sorted(package_dir.rglob("*")):
        rel = path.relative_to(package_dir.parent).as_posix()
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            members.append((rel, path.read_bytes()))
    metadata = "\n".join(
        ["Metadata-Version: 2.1", "Name: chutes", f"Version: {version}", "Requires-Python: >=3.11"]
        + [f"Requires-Dist: {req}" for req in RUNTIME_REQUIREMENTS]
    )
    wheel = "Wheel-Version: 1.0\nGenerator: chutes build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    members += [(f"{dist_info}/METADATA", metadata.encode() + b"\n"), (f"{dist_info}/WHEEL", wheel.encode())]
    record = "".join(f"{name},sha256={digest(data)},{len(data)}\n" for name, data in members)
    members.append((f"{dist_info}/RECORD", (record + f"{dist_info}/RECORD,,\n").encode()))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"chutes-{version}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return target


def digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def wheel_cache_dir() -> Path:
    """Where fetched wheelhouses are kept: $CHUTES_WHEEL_CACHE or the user cache directory."""
    configured = os.environ.get("CHUTES_WHEEL_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chutes" / "wheelhouse"


def target_platforms() -> list[str]:
    """Linux wheel platforms for the image, on this host's CPU architecture."""
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine())
    return [f"manylinux_2_{minor}_{machine}" for minor in (28, 17)] + [f"manylinux2014_{machine}"]


def fetch_wheelhouse(
    requirements: list[str], *, python_version: str | None = None, on_line: Callable[[str], None] | None = None
) -> Path:
    """Downloads wheels for `requirements` (and their dependencies) once, and returns the folder.

    Folders are keyed by the requirements and target, so a second build reuses them offline.
    `on_line` gets each line pip prints while it downloads (what it is fetching now).
    """
    python_version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    platforms = target_platforms()
    key_text = "\n".join([python_version, *platforms, *requirements])
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    folder = wheel_cache_dir() / key
    if (folder / "requirements.txt").is_file():
        return folder
    if not requirements:  # e.g. a requirements.txt of comments only: nothing to fetch, and pip would refuse
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "requirements.txt").write_text("")
        return folder
    partial = folder.with_name(folder.name + f".part{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    command = [sys.executable, "-m", "pip", "download", "--progress-bar", "off", "--only-binary=:all:"]
    command += ["--dest", str(partial), "--python-version", python_version, "--implementation", "cp"]
    for name in platforms:
        command += ["--platform", name]
    lines: list[str] = []
    with subprocess.Popen(
        [*command, *requirements], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        for line in process.stdout:
            lines.append(line.rstrip())
            if on_line is not None and line.strip():
                on_line(line.strip())
    if process.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        tail = "\n".join(line for line in lines[-8:] if line)
        raise BuildError(
            f"could not download wheels for {', '.join(requirements)} (Python {python_version}, "
            f"{platforms[0]}):\n{tail}\nCheck the names and versions, and that pip can reach "
            "its index (pip's own configuration is used); packages without wheels cannot be installed."
        )
    (partial / "requirements.txt").write_text("".join(f"{req}\n" for req in requirements))
    try:
        partial.rename(folder)
    except OSError:  # another build finished the same wheelhouse first
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_pins(requirements: tuple[str, ...] | list[str] = RUNTIME_REQUIREMENTS) -> list[str]:
    """Pins the runtime's dependencies (or other `requirements`) and theirs to the versions installed
    here, so the image runs what was tested. Packages not installed here (other platforms, unused
    extras) are left out.
    """
    from importlib.metadata import distributions

    installed = {canonical_name(d.metadata["Name"]): d for d in distributions()}
    pins: dict[str, str] = {}
    wanted: dict[str, set[str]] = {}
    queue = [parse_requirement(req) for req in requirements]
    while queue:
        name, extras = queue.pop()
        key = canonical_name(name)
        dist = installed.get(key)
        if dist is None or (key in wanted and extras <= wanted[key]):
            continue
        wanted[key] = wanted.get(key, set()) | extras
        pins[key] = f"{dist.metadata['Name']}=={dist.version}"
        for req in dist.requires or ():
            spec, _, marker = req.partition(";")
            needed_extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
            if needed_extra is None or needed_extra.group(1) in wanted[key]:
                queue.append(parse_requirement(spec))
    return [pins[key] for key in sorted(pins)]


def parse_requirement(text: str) -> tuple[str, set[str]]:
    """Returns the name and extras of a requirement like 'uvicorn[standard]>=0.29'."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?", text)
    if match is None:
        raise ValueError(f"not a requirement: {text!r}")
    extras = {e.strip() for e in (match.group(2) or "").split(",") if e.strip()}
    return match.group(1), extras

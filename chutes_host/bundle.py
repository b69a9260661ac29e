"""The deploy bundle: a gzip tar of manifest.json, app/ and an optional requirements.txt.

Packing runs on the developer's machine; unpacking runs on the host and refuses anything
that could write outside its target directory.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import shutil
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from chutes_host.manifest import Manifest, ManifestError, parse_manifest

ALLOWED_TOP = ("manifest.json", "requirements.txt", "app")
MAX_MANIFEST_BYTES = 1024 * 1024  # it becomes a database row
MAX_MANIFEST_DEPTH = 32
TOO_DEEP = object()


class BundleError(ValueError):
    """A bundle the host refuses; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def pack_bundle(
    target: Path,
    *,
    manifest: dict[str, Any],
    files: Iterable[tuple[Path, str]],
    requirements: str | None = None,
    on_read: Callable[[int], None] | None = None,
) -> int:
    """Writes a bundle of (path on disk, path under app/) pairs to target; returns its size.

    `on_read(n)` is called as each n bytes of the files are read: to show progress, or to stop
    packing by raising.
    """
    with tarfile.open(target, "w:gz", compresslevel=6) as tar:
        _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=2).encode())
        if requirements:
            _add_bytes(tar, "requirements.txt", requirements.encode())
        for source, arcname in files:
            info = tar.gettarinfo(source, arcname=f"app/{arcname}")
            if info.isreg():
                with open(source, "rb") as f:
                    tar.addfile(info, _ReportingReader(f, on_read) if on_read else f)
            else:
                tar.addfile(info)
    return target.stat().st_size


class _ReportingReader:
    def __init__(self, f: Any, on_read: Callable[[int], None]) -> None:
        self._f = f
        self._on_read = on_read

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self._on_read(len(data))
        return data


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def unpack_bundle(archive: Path, target: Path, *, max_bytes: int, max_files: int) -> Manifest:
    """Unpacks a bundle into a new directory target and returns its manifest.

    Raises BundleError (and leaves nothing at target) on a malformed bundle, a member that
    escapes target, a link, a device, or more than max_bytes / max_files unpacked.
    """
    target.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = _checked_members(tar, max_bytes=max_bytes, max_files=max_files)
            _extract(tar, target, members)
        return _read_manifest(target)
    except BaseException as exc:  # whatever went wrong, nothing stays behind
        shutil.rmtree(target, ignore_errors=True)
        if isinstance(exc, BundleError):
            raise
        if isinstance(exc, ManifestError):
            raise BundleError(str(exc)) from None
        if isinstance(exc, tarfile.TarError | EOFError | OSError | ValueError):
            raise BundleError(
                f"the bundle is not a readable gzip tar ({exc}); upload the file `chutes deploy` makes"
            ) from None
        raise


def _extract(tar: tarfile.TarFile, target: Path, members: list[tarfile.TarInfo]) -> None:
    """Extracts checked members as tarfile's "data" filter does: no set-id, sticky or group/other write bits,
    and files owned by the host's user whatever the archive says."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(target, members=members, filter="data")
        return
    # Python before 3.11.4 (e.g. Debian 12's 3.11.2) has no extraction filters: _checked_members already
    # refused what escapes, links out and devices; strip the modes and owners here
    for member in members:
        if member.isfile():
            member.mode &= 0o755
        elif member.isdir():
            member.mode = 0o755
        member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
    tar.extractall(target, members=members)


def _checked_members(tar: tarfile.TarFile, *, max_bytes: int, max_files: int) -> list[tarfile.TarInfo]:
    members: list[tarfile.TarInfo] = []
    total = 0
    for member in tar:
        name = _checked_name(member.name)
        if member.islnk() or (member.issym() and not _link_stays_inside(name, member.linkname)):
            raise BundleError(
                f"bundle member {member.name!r} is a link to {member.linkname!r}, outside app/; "
                "links must point inside the chute's directory (copy the file in instead)"
            )
        if not (member.isfile() or member.isdir() or member.issym()):
            raise BundleError(f"bundle member {member.name!r} is not a regular file or directory")
        if name.split("/", 1)[0] not in ALLOWED_TOP:
            raise BundleError(
                f"unexpected bundle member {member.name!r}: a bundle holds only "
                "manifest.json, requirements.txt and app/"
            )
        if name == "manifest.json" and member.size > MAX_MANIFEST_BYTES:
            raise BundleError(
                f"manifest.json is {member.size} bytes; at most {MAX_MANIFEST_BYTES} are accepted "
                "(keep the readme short, or link to a longer one)",
                status=413,
            )
        total += member.size
        if total > max_bytes:
            raise BundleError(
                f"the bundle unpacks to more than {max_bytes // (1024 * 1024)} MiB; "
                "leave data and weights out of it (list them in .chutesignore)",
                status=413,
            )
        members.append(member)
        if len(members) > max_files:
            raise BundleError(
                f"the bundle holds more than {max_files} files; list what the chute does not need in .chutesignore",
                status=413,
            )
    return members


def _link_stays_inside(name: str, linkname: str) -> bool:
    target = posixpath.normpath(posixpath.join(posixpath.dirname(name), linkname))
    return not linkname.startswith("/") and target.startswith("app/") and name.startswith("app/")


def _checked_name(name: str) -> str:
    normal = posixpath.normpath(name)
    if name.startswith(("/", "\\")) or os.path.isabs(name) or normal == ".." or normal.startswith("../"):
        raise BundleError(
            f"bundle member {name!r} points outside the bundle; member paths must be relative and stay inside it"
        )
    return normal


def _read_manifest(root: Path) -> Manifest:
    path = root / "manifest.json"
    if not path.is_file():
        raise BundleError("the bundle has no manifest.json; build it with `chutes deploy`")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"manifest.json is not valid JSON: {exc}") from None
    except RecursionError:
        data = TOO_DEEP
    if data is TOO_DEEP or nesting_depth(data) > MAX_MANIFEST_DEPTH:
        raise BundleError(
            f"manifest.json is nested more than {MAX_MANIFEST_DEPTH} levels deep; build it with `chutes deploy`"
        )
    manifest = parse_manifest(data)
    if (
        not (root / "app" / manifest.module_path).is_file()
        and not (root / "app" / manifest.module_path.removesuffix(".py") / "__init__.py").is_file()
    ):
        raise BundleError(
            f"entrypoint {manifest.entrypoint!r} names module file app/{manifest.module_path}, "
            "which is not in the bundle"
        )
    return manifest


def nesting_depth(value: Any, limit: int = MAX_MANIFEST_DEPTH) -> int:
    """Returns how deeply lists and objects nest in decoded JSON, counting no further than limit + 1."""
    depth, level = 0, [value]
    while level and depth <= limit:
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        depth += 1
    return depth

"""The deploy bundle: a gzip tar of manifest.json, app/ and an optional requirements.txt.

Packing runs on the developer's machine. Unpacking runs on the host, as the host's user, on an
archive a tenant made, so it relies neither on a lexical check of names nor on tarfile's extraction
(Python before 3.11.4, such as Debian 12's 3.11.2, has no extraction filters, and a chain of
in-bundle links that each look harmless on paper once wrote into another chute's directory):

- tarfile only parses headers, from a stream that lets it read no further than this module allows:
  MAX_HEADER_BYTES for the headers of one member, so that a GNU long name or a PAX record is refused
  before it is read into memory, then the member's declared size, within max_bytes for all files and
  a small allowance per member for the headers.
- This module writes every member itself, through directory descriptors, one path component at a
  time, opening each with O_NOFOLLOW and creating files with O_EXCL: no write follows a link,
  whatever the archive holds. A member whose path goes through a link or a file of the bundle, or
  that is already there, is refused by name.
- Links stay inside app/: once every member is known, each link's target is resolved through the
  bundle's other links, as the kernel would, and must end inside app/.

Extraction (`extract_bundle`) imports only the standard library, so that it can be checked on every
Python the host supports, Debian's own python3 included.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import shutil
import tarfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from chutes_host.errors import BundleError

if TYPE_CHECKING:
    from chutes_host.deploy.manifest import Manifest

ALLOWED_TOP = ("manifest.json", "requirements.txt", "app")
MAX_MANIFEST_BYTES = 1024 * 1024  # it becomes a database row
MAX_MANIFEST_DEPTH = 32
MAX_HEADER_BYTES = 16 * 1024  # one member's headers: its 512-byte block, long-name and PAX records
MEMBER_OVERHEAD = 4 * 1024  # budgeted per member for headers and padding, on top of max_bytes
MAX_NAME_BYTES = 1024  # a member's path or a link's target
MAX_DEPTH = 64  # directories in a member's path
MAX_LINK_STEPS = 256  # path components walked to resolve one link, following others
CHUNK = 64 * 1024
TOO_DEEP = object()


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
    escapes target, a link out of app/, a device, or more than max_bytes / max_files unpacked.
    """
    extract_bundle(archive, target, max_bytes=max_bytes, max_files=max_files)
    try:
        return _read_manifest(target)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def extract_bundle(archive: Path, target: Path, *, max_bytes: int, max_files: int) -> None:
    """Extracts a bundle into a new directory target, checking its members but not its manifest.

    Raises BundleError, and leaves nothing at target, on whatever unpack_bundle refuses.
    """
    target.mkdir(parents=True)
    stream: _BoundedStream | None = None
    try:
        with open(archive, "rb") as raw, gzip.GzipFile(fileobj=raw) as unzipped:
            over = BundleError(
                f"the bundle unpacks to more than {max_bytes // (1024 * 1024)} MiB, its tar headers included; "
                "leave data and weights out of it (list them in .chutesignore)",
                status=413,
            )
            stream = _BoundedStream(unzipped, total=max_bytes + (max_files + 1) * MEMBER_OVERHEAD, over=over)
            root = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                links = _extract_members(stream, _Directories(root), max_bytes=max_bytes, max_files=max_files)
            finally:
                os.close(root)
        _check_links(links)
    except BaseException as exc:  # whatever went wrong, nothing stays behind
        shutil.rmtree(target, ignore_errors=True)
        if stream is not None and stream.refusal is not None:
            raise stream.refusal from None  # raised inside tarfile, which may have wrapped it
        if isinstance(exc, BundleError):
            raise
        if isinstance(exc, tarfile.TarError | EOFError | OSError | zlib.error | ValueError):
            raise BundleError(
                f"the bundle is not a readable gzip tar ({exc}); upload the file `chutes deploy` makes"
            ) from None
        raise


class _BoundedStream:
    """The decompressed bundle as tarfile sees it: read forward only, and never past what is allowed.

    A read that would pass the allowance (or the total) raises before anything is read, so tarfile
    cannot hold more than one allowance of the archive in memory.
    """

    def __init__(self, raw: BinaryIO, *, total: int, over: BundleError) -> None:
        self._raw = raw
        self._pos = 0
        self._total = total
        self._over_total = over
        self._until = 0
        self._over_allowance = over
        self.refusal: BundleError | None = None

    def allow(self, size: int, refusal: BundleError) -> None:
        """Lets the next size bytes be read; reading past them raises refusal."""
        self._until = self._pos + size
        self._over_allowance = refusal

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self._until - self._pos
        end = self._pos + size
        if end > self._until or end > self._total:
            self.refusal = self._over_allowance if end <= self._total else self._over_total
            raise self.refusal
        data = self._raw.read(size)
        self._pos += len(data)
        return data

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = offset + (self._pos if whence == io.SEEK_CUR else 0)
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or position < self._pos:
            raise io.UnsupportedOperation("a bundle is read forward only")
        while self._pos < position and self.read(min(position - self._pos, CHUNK)):
            pass
        return self._pos


class _Directories:
    """Descriptors of the directories on the path of the last member written, opened without following links."""

    def __init__(self, root: int) -> None:
        self._root = root
        self._open: list[tuple[str, int]] = []

    def __enter__(self) -> _Directories:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._close_from(0)

    def open(self, parts: list[str]) -> int:
        """Returns a descriptor of the directory parts (relative to the root), creating what is missing."""
        keep = 0
        while keep < min(len(parts), len(self._open)) and self._open[keep][0] == parts[keep]:
            keep += 1
        self._close_from(keep)
        for part in parts[keep:]:
            parent = self._open[-1][1] if self._open else self._root
            try:
                os.mkdir(part, 0o700, dir_fd=parent)
                created = True
            except FileExistsError:
                created = False
            fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            self._open.append((part, fd))
            if created:
                os.fchmod(fd, 0o755)  # whatever the archive or the umask says
        return self._open[-1][1] if self._open else self._root

    def _close_from(self, keep: int) -> None:
        while len(self._open) > keep:
            os.close(self._open.pop()[1])


def _extract_members(stream: _BoundedStream, dirs: _Directories, *, max_bytes: int, max_files: int) -> dict[str, str]:
    """Writes each member as tarfile reads it; returns the links written (name: target)."""
    kinds: dict[str, str] = {}  # name: "file", "link" or "directory", for members written so far
    links: dict[str, str] = {}
    count = total = 0
    previous = None
    with dirs:
        stream.allow(MAX_HEADER_BYTES, _header_too_big(previous))
        tar = tarfile.TarFile(fileobj=stream)  # reads the first header
        while True:
            stream.allow(MAX_HEADER_BYTES, _header_too_big(previous))
            member = tar.next()
            tar.members.clear()  # tarfile keeps every header it read; these are written and done
            if member is None:
                return links
            count += 1
            if count > max_files:
                raise BundleError(
                    f"the bundle holds more than {max_files} files; list what the chute does not need in .chutesignore",
                    status=413,
                )
            parts = _checked_parts(member)
            name = "/".join(parts)
            if member.isfile():
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
            _check_path(member, parts, kinds)
            try:
                kinds[name] = _write_member(stream, dirs, member, parts)
            except OSError as exc:
                raise _write_error(member, exc) from None
            if member.issym():
                links[name] = member.linkname
            previous = member.name


def _checked_parts(member: tarfile.TarInfo) -> list[str]:
    """Returns the member's path as components, or raises BundleError saying what is wrong with it."""
    name = member.name
    if len(name.encode(errors="surrogateescape")) > MAX_NAME_BYTES or "\0" in name:
        raise BundleError(
            f"bundle member {name[:200]!r}... has a name of more than {MAX_NAME_BYTES} bytes (or a NUL byte); "
            "shorten the paths in the chute's directory"
        )
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise BundleError(
            f"bundle member {name!r} points outside the bundle; member paths must be relative, without '..'"
        )
    if not parts or parts[0] not in ALLOWED_TOP:
        raise BundleError(
            f"unexpected bundle member {name!r}: a bundle holds only manifest.json, requirements.txt and app/"
        )
    if len(parts) > MAX_DEPTH:
        raise BundleError(f"bundle member {name!r} is more than {MAX_DEPTH} directories deep; flatten the chute's tree")
    if member.islnk():
        raise BundleError(
            f"bundle member {name!r} is a hard link to {member.linkname!r}; links must be symbolic and point "
            "inside the chute's directory (copy the file in instead)"
        )
    if member.issym() and (parts[0] != "app" or len(parts) == 1):
        raise BundleError(
            f"bundle member {name!r} is a link to {member.linkname!r}, outside app/; "
            "links must point inside the chute's directory (copy the file in instead)"
        )
    if not (member.isdir() or member.issym() or (member.isfile() and not member.issparse())):
        raise BundleError(f"bundle member {name!r} is not a regular file, directory or link")
    if (parts[0] == "app") != (member.isdir() or len(parts) > 1):
        raise BundleError(
            f"bundle member {name!r}: in a bundle app/ is a directory, manifest.json and requirements.txt are files"
        )
    return parts


def _check_path(member: tarfile.TarInfo, parts: list[str], kinds: dict[str, str]) -> None:
    """Refuses a member whose path goes through a link or a file of the bundle, or that is already there."""
    for depth in range(1, len(parts)):
        prefix = "/".join(parts[:depth])
        if kinds.get(prefix, "directory") != "directory":
            raise BundleError(
                f"bundle member {member.name!r} goes through {prefix!r}, which is a {kinds[prefix]} in the bundle; "
                "a bundle may only put files in real directories"
            )
    name = "/".join(parts)
    if name in kinds and not (member.isdir() and kinds[name] == "directory"):
        raise BundleError(f"bundle member {member.name!r} is in the bundle twice; keep one copy of it")


def _write_member(stream: _BoundedStream, dirs: _Directories, member: tarfile.TarInfo, parts: list[str]) -> str:
    """Writes one member under its parent directory without following any link; returns its kind."""
    if member.isdir():
        dirs.open(parts)
        return "directory"
    parent = dirs.open(parts[:-1])
    if member.issym():
        if len(member.linkname.encode(errors="surrogateescape")) > MAX_NAME_BYTES or "\0" in member.linkname:
            raise BundleError(f"bundle member {member.name!r} is a link to a name of more than {MAX_NAME_BYTES} bytes")
        os.symlink(member.linkname, parts[-1], dir_fd=parent)
        return "link"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with open(os.open(parts[-1], flags, 0o600, dir_fd=parent), "wb") as f:
        stream.seek(member.offset_data)
        stream.allow(member.size, BundleError(f"bundle member {member.name!r} is longer than its header says"))
        left = member.size
        while left:
            data = stream.read(min(left, CHUNK))
            if not data:
                raise BundleError(f"the bundle ends inside member {member.name!r}; upload the whole file again")
            f.write(data)
            left -= len(data)
        # what tarfile's "data" filter keeps: no set-id or sticky bits, nothing writable by others
        os.fchmod(f.fileno(), 0o755 if member.mode & 0o100 else 0o644)
        try:
            os.utime(f.fileno(), (member.mtime, member.mtime))
        except (OverflowError, ValueError, OSError):
            pass  # a nonsense time stays the time of unpacking
    return "file"


def _write_error(member: tarfile.TarInfo, exc: OSError) -> BundleError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return BundleError("the host has no room to unpack the bundle; try again later", status=507)
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EEXIST):
        reason = "its path goes through a link or a file of the bundle, or it is there twice"
    else:
        reason = exc.strerror or str(exc)
    return BundleError(f"bundle member {member.name!r} cannot be unpacked: {reason}")


def _header_too_big(previous: str | None) -> BundleError:
    where = f"after {previous!r}" if previous else "at the start"
    return BundleError(
        f"a bundle member's headers ({where}) take more than {MAX_HEADER_BYTES // 1024} KiB: a name or PAX "
        f"record that long is refused; keep paths under {MAX_NAME_BYTES} bytes",
        status=413,
    )


def _check_links(links: dict[str, str]) -> None:
    """Refuses a link whose target, resolved through the bundle's links, leaves app/ (or does not resolve)."""
    for name, target in links.items():
        resolved = _resolve(links, name.split("/")[:-1], target)
        if resolved is None or resolved[0] != "app":
            raise BundleError(
                f"bundle member {name!r} is a link to {target!r}, which leads outside app/ through the "
                "bundle's links (or loops); links must point inside the chute's directory (copy the file in instead)"
            )


def _resolve(links: dict[str, str], start: list[str], target: str) -> list[str] | None:
    """Returns the components of where target, read in directory start, leads through links; None if it
    leaves the bundle, is absolute, or takes more than MAX_LINK_STEPS components to resolve."""
    if target.startswith("/"):
        return None
    parts, pending, steps = list(start), target.split("/")[::-1], 0
    while pending:
        steps += 1
        if steps > MAX_LINK_STEPS:
            return None
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(part)
        link = links.get("/".join(parts))
        if link is not None:
            if link.startswith("/"):
                return None
            parts.pop()
            pending.extend(link.split("/")[::-1])
    return parts or None


def _read_manifest(root: Path) -> Manifest:
    from chutes_host.deploy.manifest import ManifestError, parse_manifest  # pydantic: not needed to extract

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
    try:
        manifest = parse_manifest(data)
    except ManifestError as exc:
        raise BundleError(str(exc)) from None
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

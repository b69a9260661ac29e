"""Files a tenant can write, as the host reads and writes them: never through a link, never a FIFO or a
device, never more than a cap, each path walked from a directory of the host's own.

Every function takes `root`, a directory only the host can change (a job's `DATA/jobs/{id}`, a version's
`DATA/chutes/{slug}/{n}`), and `relative`, the path below it that the tenant may have made anything of.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from chutes_host.errors import TenantFileError, TooManyEntries

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO must not wait for a writer (the fstat that follows refuses it)
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
READ_CHUNK = 64 * 1024
MAX_DEPTH = 64
KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFDIR: "a directory",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def kind_of(mode: int) -> str:
    """Takes an st_mode, and returns what it is in words ('a FIFO', 'a regular file', ...)."""
    return KINDS.get(stat.S_IFMT(mode), "a regular file" if stat.S_ISREG(mode) else "not a file")


def split_path(relative: str) -> list[str]:
    """Takes a relative path, and returns its parts; raises FileNotFoundError for '..', '.' or an empty one."""
    parts = [p for p in relative.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise FileNotFoundError(relative)
    return parts


@contextlib.contextmanager
def open_parent(root: Path, parts: list[str]) -> Iterator[int]:
    """Yields a descriptor of the directory holding parts[-1], each step below `root` opened without
    following a link; raises FileNotFoundError when one is missing, TenantFileError when one is no directory."""
    fd = os.open(root, DIR_FLAGS)
    try:
        for index, part in enumerate(parts[:-1]):
            try:
                step = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                _raise_for(fd, part, "/".join(parts[: index + 1]), exc, wanted="a directory")
            os.close(fd)
            fd = step
        yield fd
    finally:
        os.close(fd)


def open_regular(root: Path, relative: str) -> tuple[int, int]:
    """Opens a regular file below `root` for reading, and returns (fd, size); raises FileNotFoundError when
    it does not exist, TenantFileError when it (or a directory on the way) is anything else."""
    parts = split_path(relative)
    with open_parent(root, parts) as parent:
        info = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode):  # a device is refused before it is opened
            raise TenantFileError(f"{relative} is {kind_of(info.st_mode)}, not a regular file")
        try:
            fd = os.open(parts[-1], READ_FLAGS, dir_fd=parent)
        except OSError as exc:
            _raise_for(parent, parts[-1], relative, exc, wanted="a regular file")
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # swapped between the two looks
        os.close(fd)
        raise TenantFileError(f"{relative} is {kind_of(info.st_mode)}, not a regular file")
    return fd, info.st_size


def read_regular(root: Path, relative: str, *, limit: int) -> bytes:
    """Returns the content of a regular file below `root`; raises TenantFileError if it is larger than
    `limit` bytes or no regular file, FileNotFoundError if it is missing. It blocks on disk only: call it
    in a worker thread when the file may be large."""
    fd, _ = open_regular(root, relative)
    with open(fd, "rb", buffering=0) as f:
        data = bytearray()
        while len(data) <= limit and (chunk := f.read(min(READ_CHUNK, limit + 1 - len(data)))):
            data += chunk
    if len(data) > limit:
        raise TenantFileError(f"{relative} is larger than {limit} bytes")
    return bytes(data)


def is_regular(root: Path, relative: str) -> bool:
    """Says whether `relative` is a regular file below `root`, reached without a link (nothing is opened)."""
    try:
        parts = split_path(relative)
        with open_parent(root, parts) as parent:
            return stat.S_ISREG(os.stat(parts[-1], dir_fd=parent, follow_symlinks=False).st_mode)
    except (OSError, TenantFileError):
        return False


def replace_file(root: Path, relative: str, data: bytes) -> None:
    """Writes a new regular file below `root` in place of whatever the tenant left there (a FIFO, a link);
    raises TenantFileError if a directory is in the way or something is put back while it writes."""
    parts = split_path(relative)
    with open_parent(root, parts) as parent:
        with contextlib.suppress(FileNotFoundError):
            info = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                raise TenantFileError(f"{relative} is a directory; remove it")
            os.unlink(parts[-1], dir_fd=parent)
        try:
            fd = os.open(parts[-1], CREATE_FLAGS, 0o644, dir_fd=parent)
        except FileExistsError:
            raise TenantFileError(f"{relative} was made again while the host wrote it") from None
    with open(fd, "wb", buffering=0) as f:
        f.write(data)


def walk_regular(root: Path, relative: str, *, max_entries: int | None = None) -> Iterator[tuple[str, int]]:
    """Yields (path below `relative`, size) of each regular file under that directory, in name order,
    never following a link nor opening anything but directories; nothing when it is missing or no directory.
    Raises TooManyEntries once it has met more than `max_entries` entries (files, directories, anything),
    so it never holds more than that many names however many the tenant made."""
    try:
        parts = split_path(relative)
        with open_parent(root, parts) as parent:
            top = os.open(parts[-1], DIR_FLAGS, dir_fd=parent)
    except (OSError, TenantFileError):
        return
    budget = Budget(relative, sys.maxsize if max_entries is None else max_entries)
    try:
        yield from _walk(top, "", MAX_DEPTH, budget)
    finally:
        os.close(top)


class Budget:
    """How many more directory entries a walk may read."""

    def __init__(self, relative: str, cap: int) -> None:
        self.relative, self.cap, self.left = relative, cap, cap

    def __repr__(self) -> str:
        return f"Budget({self.relative!r}, cap={self.cap}, left={self.left})"

    def take(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise TooManyEntries(f"{self.relative} holds more than {self.cap} files and directories")


def _walk(fd: int, prefix: str, depth: int, budget: Budget) -> Iterator[tuple[str, int]]:
    entries = []
    with os.scandir(fd) as listing:
        for entry in listing:  # counted as read: a directory of millions of names is never held whole
            budget.take()
            entries.append(entry)
    entries.sort(key=lambda e: e.name)
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(info.st_mode):
            yield prefix + entry.name, info.st_size
        elif stat.S_ISDIR(info.st_mode) and depth > 0:  # a deeper tree would hold a descriptor per level
            try:
                below = os.open(entry.name, DIR_FLAGS, dir_fd=fd)
            except OSError:
                continue
            try:
                yield from _walk(below, f"{prefix}{entry.name}/", depth - 1, budget)
            finally:
                os.close(below)


def _raise_for(parent: int, name: str, shown: str, exc: OSError, *, wanted: str) -> NoReturn:
    """Turns a failed open of `name` (relative to `parent`) into FileNotFoundError or a TenantFileError
    saying what is there instead."""
    if exc.errno == errno.ENOENT:
        raise FileNotFoundError(shown) from None
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        raise FileNotFoundError(shown) from None
    if kind_of(info.st_mode) == wanted:  # e.g. out of descriptors: not the tenant's doing
        raise exc
    raise TenantFileError(f"{shown} is {kind_of(info.st_mode)}, not {wanted}") from None

"""A job's files on the host: its uploaded inputs, the outputs it left, its result; read without
following the links a job may have put in its directory (it is tenant code)."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MAX_RESULT_BYTES = 1024 * 1024
INPUT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def directory_size(directory: Path) -> int:
    """Returns the bytes of the regular files under `directory` (0 when it does not exist)."""
    return sum(size for _, size in walk_files(directory))


def walk_files(directory: Path) -> Iterator[tuple[str, int]]:
    """Yields (relative path, size) of each regular file under `directory`, never following a link."""
    if not directory.is_dir() or directory.is_symlink():
        return
    for root, dirs, files in os.walk(directory, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):
                yield os.path.relpath(path, directory), info.st_size


def open_output(outputs: Path, relative: str) -> tuple[int, int]:
    """Opens one output file for reading; returns (fd, size). Raises FileNotFoundError for anything but a
    regular file inside `outputs` reached without links."""
    parts = [p for p in relative.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise FileNotFoundError(relative)
    flags = os.O_RDONLY | os.O_NOFOLLOW
    fd = os.open(outputs, flags | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        file_fd = os.open(parts[-1], flags, dir_fd=fd)
    except OSError:
        raise FileNotFoundError(relative) from None
    finally:
        os.close(fd)
    info = os.fstat(file_fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(file_fd)
        raise FileNotFoundError(relative)
    return file_fd, info.st_size


def read_result(path: Path) -> dict[str, Any]:
    """Returns the job's result.json ({} when missing, a link, too large or not a JSON object)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return {}
    with open(fd, "rb") as f:
        data = f.read(MAX_RESULT_BYTES + 1)
    if len(data) > MAX_RESULT_BYTES:
        return {"status": "failed", "error": f"the job's result is larger than {MAX_RESULT_BYTES} bytes"}
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def check_input_name(name: str) -> str:
    """Returns an uploaded file's name if it is a plain file name, else raises ValueError saying what is allowed."""
    base = name.rsplit("/", 1)[-1]
    if not INPUT_NAME.match(base):
        raise ValueError(
            f"input file name {name!r} is not allowed; use letters, digits, '.', '_' and '-' "
            "(up to 128 characters, not starting with '.')"
        )
    return base

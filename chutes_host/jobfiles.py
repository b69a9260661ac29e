"""A job's files on the host: its uploaded inputs, the outputs it left, its result; read as files of a
tenant (chutes_host.tenantfiles), below the job's directory `DATA/jobs/{id}`, which only the host can change."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chutes_host.tenantfiles import TenantFileError, open_regular, read_regular, walk_regular

MAX_RESULT_BYTES = 1024 * 1024
INPUT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
OUTPUTS = "work/outputs"
RESULT = "work/result.json"


def outputs_size(job_dir: Path) -> int:
    """Returns the bytes of the regular files the job left in its outputs (0 when there are none)."""
    return sum(size for _, size in walk_outputs(job_dir))


def walk_outputs(job_dir: Path) -> Iterator[tuple[str, int]]:
    """Yields (path, size) of each regular file in the job's outputs, never following a link."""
    return walk_regular(job_dir, OUTPUTS)


def open_output(job_dir: Path, relative: str) -> tuple[int, int]:
    """Opens one output file for reading; returns (fd, size). Raises FileNotFoundError when there is no
    such file, TenantFileError when it is something else than a regular file reached without links."""
    parts = [p for p in relative.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise FileNotFoundError(relative)
    try:
        return open_regular(job_dir, f"{OUTPUTS}/{'/'.join(parts)}")
    except TenantFileError as exc:
        raise TenantFileError(str(exc).removeprefix(f"{OUTPUTS}/")) from None


def read_result(job_dir: Path) -> dict[str, Any]:
    """Returns the job's result.json ({} when it is missing or not a JSON object); raises TenantFileError
    when it is no regular file or larger than MAX_RESULT_BYTES. Blocks on disk: call it in a worker thread."""
    try:
        data = read_regular(job_dir, RESULT, limit=MAX_RESULT_BYTES)
    except FileNotFoundError:
        return {}
    except TenantFileError as exc:
        raise TenantFileError(str(exc).removeprefix("work/")) from None
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

"""A job's files on the host: its uploaded inputs, the outputs it left, its result; read as files of a
tenant (chutes_host.sandbox.tenantfiles), below the job's directory `DATA/jobs/{id}`, which only the host can change."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chutes_host.sandbox.tenantfiles import TenantFileError, TooManyEntries, open_regular, read_regular, walk_regular

MAX_RESULT_BYTES = 1024 * 1024
INPUT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
OUTPUTS = "work/outputs"
RESULT = "work/result.json"


def settle_outputs(job_dir: Path, *, max_entries: int) -> tuple[int, str | None]:
    """Returns the bytes of the regular files an ended job left in its outputs, and None; or, when it left
    more than `max_entries` files and directories, removes them all and returns 0 and why. Blocks on disk:
    call it in a worker thread."""
    try:
        return sum(size for _, size in walk_outputs(job_dir, max_entries=max_entries)), None
    except TooManyEntries:
        # neither listed nor counted against the quota past the cap, so they are not kept either
        shutil.rmtree(job_dir / OUTPUTS, ignore_errors=True)
    return 0, (
        f"it left more than {max_entries} files and directories in its output_dir (this host's limit), so the "
        "host removed its outputs; write fewer, larger files (e.g. one archive)"
    )


def page_outputs(
    job_dir: Path, *, offset: int, limit: int, max_entries: int
) -> tuple[list[dict[str, Any]], int | None, str | None]:
    """Returns the job's output files number offset to offset+limit in name order ({path, size} each), the
    offset of the next page (None on the last), and a note when the walk stopped at `max_entries`."""
    page: list[dict[str, Any]] = []
    try:
        for index, (path, size) in enumerate(walk_outputs(job_dir, max_entries=max_entries)):
            if index >= offset + limit:
                return page, index, None
            if index >= offset:
                page.append({"path": path, "size": size})
    except TooManyEntries:
        note = f"the job has more than {max_entries} files and directories in its output_dir; only these are listed"
        return page, None, note
    return page, None, None


def walk_outputs(job_dir: Path, *, max_entries: int | None = None) -> Iterator[tuple[str, int]]:
    """Yields (path, size) of each regular file in the job's outputs, never following a link; raises
    TooManyEntries past `max_entries` files and directories."""
    return walk_regular(job_dir, OUTPUTS, max_entries=max_entries)


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

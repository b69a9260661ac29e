"""Instance and build log files: reading their tail and following them as they grow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

TAIL_BYTES = 64 * 1024


def read_tail(path: Path, lines: int = 40) -> str:
    """Returns the last `lines` lines of a log file ('' when it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            data = f.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


async def follow_logs(paths: list[Path], *, tail: int, follow: bool, poll: float = 0.2) -> AsyncIterator[bytes]:
    """Yields the last `tail` lines of each file, then (when follow) new bytes as they arrive."""
    offsets: dict[Path, int] = {}
    for path in paths:
        text = read_tail(path, tail)
        if text:
            yield _label(path, text + "\n")
        offsets[path] = path.stat().st_size if path.exists() else 0
    while follow:
        await asyncio.sleep(poll)
        for path in paths:
            if not path.exists():
                continue
            size = path.stat().st_size
            if size < offsets[path]:
                offsets[path] = 0
            if size > offsets[path]:
                with open(path, "rb") as f:
                    f.seek(offsets[path])
                    data = f.read(size - offsets[path])
                offsets[path] = size
                yield _label(path, data.decode("utf-8", "replace"))


def _label(path: Path, text: str) -> bytes:
    tag = f"[{path.stem}] "
    return "".join(tag + line for line in text.splitlines(keepends=True)).encode()

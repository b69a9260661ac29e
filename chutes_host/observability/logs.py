"""Instance and build log files: reading their tail and following them as they grow."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

TAIL_BYTES = 64 * 1024
ROTATE_BYTES = 50 * 1024 * 1024


def rotate_if_large(path: Path, limit: int = ROTATE_BYTES) -> None:
    """Moves a log past `limit` bytes aside to `<name>.1` (replacing an older one), so logs stay bounded."""
    try:
        if path.stat().st_size > limit:
            path.replace(path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass


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


def log_files(logs_dir: Path) -> list[Path]:
    """Returns a chute's logs in reading order: the build log, then each instance's."""
    return [logs_dir / "build.log", *sorted(logs_dir.glob("instance-*.log"))]


async def follow_logs(
    logs_dir: Path, *, tail: int, follow: bool, stop: threading.Event | None = None, poll: float = 0.2
) -> AsyncIterator[bytes]:
    """Yields the last `tail` lines of each log, then (when follow) new bytes as they arrive, new files
    included, until `stop` is set."""
    offsets: dict[Path, int] = {}
    for path in log_files(logs_dir):
        text = read_tail(path, tail)
        if text:
            yield _label(path, text + "\n")
        offsets[path] = path.stat().st_size if path.exists() else 0
    while follow and not (stop is not None and stop.is_set()):
        await asyncio.sleep(poll)
        for path in log_files(logs_dir):
            if not path.exists():
                continue
            size, seen = path.stat().st_size, offsets.get(path, 0)
            if size < seen:
                seen = 0
            if size > seen:
                with open(path, "rb") as f:
                    f.seek(seen)
                    data = f.read(size - seen)
                yield _label(path, data.decode("utf-8", "replace"))
            offsets[path] = size


def _label(path: Path, text: str) -> bytes:
    tag = f"[{path.stem}] "
    return "".join(tag + line for line in text.splitlines(keepends=True)).encode()

"""How `chutes invoke` shows a response: JSON pretty, streams as they arrive, binary to a file."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from chutes_cli.errors import CLIError

TEXT_TYPES = frozenset(
    {"application/json", "application/x-ndjson", "application/xml", "application/javascript", "application/yaml"}
)
MAX_ERROR_BODY = 1 << 20


def media_type_of(content_type: str | None) -> str:
    """Returns the bare media type of a Content-Type header, lowercased."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_textual(content_type: str | None) -> bool:
    """Tells whether a response body is text that can go to a terminal."""
    media = media_type_of(content_type)
    return (
        media.startswith("text/")
        or media in TEXT_TYPES
        or media.endswith(("+json", "+xml"))
        or "charset=" in (content_type or "")
    )


def print_json(body: bytes) -> None:
    """Pretty-prints a JSON body (in colour on a terminal); prints it as it is if it is not JSON."""
    try:
        value = json.loads(body)
    except ValueError:
        write_out(body if body.endswith(b"\n") or not body else body + b"\n")
        return
    if sys.stdout.isatty():
        from rich.console import Console

        Console().print_json(data=value)
        return
    write_out(json.dumps(value, indent=2, ensure_ascii=False).encode() + b"\n")


def print_stream(chunks: Iterable[bytes]) -> None:
    """Copies chunks to stdout as they arrive."""
    for chunk in chunks:
        write_out(chunk)


def print_sse(chunks: Iterable[bytes]) -> None:
    """Prints the data of each server-sent event on its own line as it arrives; fails on `event: error`."""
    for event, data in iter_sse(chunks):
        if event == "error":
            raise CLIError(f"the stream ended with an error: {describe_detail(data)}")
        write_out(data.encode() + b"\n")


def iter_sse(chunks: Iterable[bytes]) -> Iterator[tuple[str, str]]:
    """Yields (event, data) for each server-sent event in a byte stream, a cut-off last one included."""
    buffer = b""
    event, data = "message", []
    for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
            if line:
                event = read_sse_field(line, event, data)
            elif data:
                yield event, "\n".join(data)
                event, data = "message", []
    if buffer.strip():
        event = read_sse_field(buffer.rstrip(b"\r").decode("utf-8", errors="replace"), event, data)
    if data:
        yield event, "\n".join(data)


def read_sse_field(line: str, event: str, data: list[str]) -> str:
    """Applies one `field: value` line: appends to `data`, and returns the event name."""
    if line.startswith(":"):
        return event
    name, _, value = line.partition(":")
    value = value[1:] if value.startswith(" ") else value
    if name == "data":
        data.append(value)
    elif name == "event":
        return value
    return event


def save_body(chunks: Iterable[bytes], output: Path) -> int:
    """Streams the body into `output` through a temp file, so a failed download leaves nothing; returns its size."""
    directory = output.expanduser().resolve().parent
    if not directory.is_dir():
        raise CLIError(
            f"--output: directory {directory} does not exist. Create it or choose another path.", exit_code=2
        )
    fd, tmp_name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".part", dir=directory)
    size = 0
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
                size += len(chunk)
        os.chmod(tmp_name, 0o666 & ~current_umask())
        os.replace(tmp_name, output.expanduser())
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return size


def current_umask() -> int:
    """Returns the process umask, for files and directories made private by mkstemp and mkdtemp (0600,
    0700) that the user's own umask should decide instead (a saved output, a new project)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def describe_detail(text: str) -> str:
    """Returns the human part of an error body: its `detail`, with pydantic field errors spelled out."""
    try:
        value = json.loads(text)
    except ValueError:
        return text.strip() or "(empty body)"
    if not isinstance(value, dict) or "detail" not in value:
        return text.strip()
    detail = value["detail"]
    if isinstance(detail, list):
        return "; ".join(describe_field_error(item) for item in detail)
    return detail if isinstance(detail, str) else json.dumps(detail)


def describe_field_error(item: object) -> str:
    """Formats one pydantic error as 'field.path: message'."""
    if not isinstance(item, dict):
        return str(item)
    location = ".".join(str(part) for part in item.get("loc", []) if part not in ("body", "query"))
    message = item.get("msg", "invalid")
    return f"{location}: {message}" if location else message


def error_traceback(text: str) -> str | None:
    """Returns the server traceback a --dev chute puts in a 500 body, if any."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    trace = value.get("traceback") if isinstance(value, dict) else None
    return trace if isinstance(trace, str) else None


def write_out(data: bytes) -> None:
    """Writes bytes to stdout and flushes, so output appears as it arrives."""
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()

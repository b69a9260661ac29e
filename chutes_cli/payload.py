"""The body of an invoked request, built from --json, --data or -F options."""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from chutes_cli.errors import CLIError

QUERY_METHODS = frozenset({"GET", "DELETE", "HEAD"})


@dataclass(frozen=True)
class Payload:
    """A request body and its content type; `query` holds JSON keys moved to the URL for GET."""

    body: bytes | None = None
    content_type: str | None = None
    query: str = ""


def build_payload(method: str, *, json_text: str | None, data: str | None, forms: list[str]) -> Payload:
    """Returns the body for one of --json, --data or -F (they exclude each other)."""
    given = [name for name, value in (("--json", json_text), ("--data", data), ("-F", forms)) if value]
    if len(given) > 1:
        raise CLIError(f"{' and '.join(given)} both set the request body; use only one of them.", exit_code=2)
    if json_text is not None:
        value = parse_json_option(json_text)
        if method in QUERY_METHODS:
            return Payload(query=json_to_query(value, method))
        return Payload(json.dumps(value).encode(), "application/json")
    if data is not None:
        return read_data(data)
    if forms:
        return encode_multipart(forms)
    return Payload()


def parse_json_option(text: str) -> object:
    """Parses --json, explaining the mistake when it is not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CLIError(
            f"--json is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}. "
            'Quote it for the shell and use double quotes inside, e.g. --json \'{"text": "hi"}\'.',
            exit_code=2,
        ) from None


def json_to_query(value: object, method: str) -> str:
    """Turns a JSON object into a query string, since GET and DELETE cords read the query."""
    if not isinstance(value, dict):
        raise CLIError(
            f"a {method} request carries its parameters in the query string, so --json must be an "
            f'object of parameters, e.g. --json \'{{"name": "Ada"}}\'; got {type(value).__name__}.',
            exit_code=2,
        )
    pairs = []
    for key, item in value.items():
        for one in item if isinstance(item, list) else [item]:
            if one is not None:
                pairs.append((key, to_query_value(one)))
    return urlencode(pairs)


def to_query_value(value: object) -> str:
    """Renders one JSON value for the query string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def read_data(data: str) -> Payload:
    """Reads --data: '@file', '@-' for stdin, or the literal text; JSON is labelled as such."""
    if data == "@-":
        body = sys.stdin.buffer.read()
    elif data.startswith("@"):
        body = read_file(Path(data[1:]), "--data")
    else:
        body = data.encode()
    try:
        json.loads(body)
    except ValueError:
        return Payload(body, "application/octet-stream")
    return Payload(body, "application/json")


def read_file(path: Path, option: str) -> bytes:
    """Returns a file's bytes, or fails naming the option and the path."""
    try:
        return path.expanduser().read_bytes()
    except FileNotFoundError:
        raise CLIError(f"{option}: file {str(path)!r} does not exist. Check the path after '@'.", exit_code=2) from None
    except IsADirectoryError:
        raise CLIError(f"{option}: {str(path)!r} is a directory; give a file.", exit_code=2) from None
    except OSError as exc:
        raise CLIError(f"{option}: cannot read {str(path)!r}: {exc.strerror}.", exit_code=2) from None


def encode_multipart(forms: list[str]) -> Payload:
    """Encodes -F field=value and -F field=@file[;type=mime] as multipart/form-data."""
    import mimetypes

    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for form in forms:
        name, sep, value = form.partition("=")
        if not sep or not name:
            raise CLIError(f"-F takes field=value or field=@file, got {form!r}.", exit_code=2)
        disposition = f'form-data; name="{quote_header(name)}"'
        if value.startswith("@"):
            path_text, _, media = value[1:].partition(";type=")
            path = Path(path_text)
            content = read_file(path, "-F")
            media = media or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            head = f'{disposition}; filename="{quote_header(path.name)}"\r\nContent-Type: {media}'
        else:
            content, head = value.encode(), disposition
        parts.append(f"--{boundary}\r\nContent-Disposition: {head}\r\n\r\n".encode() + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return Payload(body, f"multipart/form-data; boundary={boundary}")


def quote_header(text: str) -> str:
    """Escapes a name for a Content-Disposition parameter."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")

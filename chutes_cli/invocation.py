"""One `chutes invoke` call: build the request, send it, show the response, pick the exit code."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlencode

import typer

from chutes_cli.client import Request, iter_chunks, send_request
from chutes_cli.display import (
    MAX_ERROR_BODY,
    describe_detail,
    error_traceback,
    is_textual,
    media_type_of,
    print_json,
    print_sse,
    print_stream,
    save_body,
)
from chutes_cli.errors import CLIError, print_error
from chutes_cli.payload import build_payload
from chutes_cli.target import resolve_target


def run_invocation(
    path: str,
    *,
    json_text: str | None,
    data: str | None,
    forms: list[str],
    query: list[str],
    method: str | None,
    url: str | None,
    chute: str | None,
    headers: list[str],
    host: str | None = None,
    output: Path | None,
    raw: bool,
    timeout: float,
) -> None:
    """Calls the cord and prints its answer; exits non-zero on an HTTP error."""
    has_body = any((json_text is not None, data is not None, forms))
    verb = (method or ("POST" if has_body else "GET")).upper()
    payload = build_payload(verb, json_text=json_text, data=data, forms=forms)
    base, target_headers = resolve_target(url, chute, host=host)
    request_headers = {**target_headers, **parse_headers(headers)}
    if payload.content_type and not any(name.lower() == "content-type" for name in request_headers):
        request_headers["Content-Type"] = payload.content_type
    full_url = join_url(base, path, [payload.query, encode_query(query)])
    request = Request(verb, full_url, request_headers, payload.body)
    response = send_request(request, timeout=timeout)
    content_type = response.getheader("content-type")
    if response.status >= 400:
        body = response.read(MAX_ERROR_BODY).decode("utf-8", errors="replace")
        report_http_error(request, response.status, response.reason, body, explicit_method=method is not None)
        raise typer.Exit(1)
    chunks = iter_chunks(response)
    if output is not None:
        size = save_body(chunks, output)
        sys.stderr.write(f"saved {size} bytes ({media_type_of(content_type) or 'no type'}) to {output}\n")
    elif raw:
        print_stream(chunks)
    elif media_type_of(content_type) == "text/event-stream":
        print_sse(chunks)
    elif media_type_of(content_type) == "application/json" or media_type_of(content_type).endswith("+json"):
        print_json(b"".join(chunks))
    elif is_textual(content_type) or not sys.stdout.isatty():
        print_stream(chunks)
    else:
        response.close()
        raise CLIError(
            f"the response is binary ({media_type_of(content_type) or 'no content type'}) and stdout is a "
            "terminal. Save it with --output FILE, or redirect it: > FILE."
        )


def parse_headers(headers: list[str]) -> dict[str, str]:
    """Parses -H 'Name: value' options."""
    parsed: dict[str, str] = {}
    for header in headers:
        name, sep, value = header.partition(":")
        if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
            raise CLIError(f"-H takes 'Name: value', got {header!r}.", exit_code=2)
        parsed[name.strip()] = value.strip()
    return parsed


def encode_query(query: list[str]) -> str:
    """Encodes -q name=value options."""
    pairs = []
    for item in query:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CLIError(f"-q takes name=value, got {item!r}.", exit_code=2)
        pairs.append((name, value))
    return urlencode(pairs)


def join_url(base: str, path: str, queries: list[str]) -> str:
    """Joins the base URL, the cord path and any query strings."""
    if path.startswith(("http://", "https://")):
        url = path
    else:
        url = base + (path if path.startswith("/") else "/" + path)
    extra = "&".join(q for q in queries if q)
    if extra:
        url += ("&" if "?" in url else "?") + extra
    return url


def report_http_error(request: Request, status: int, reason: str, body: str, *, explicit_method: bool) -> None:
    """Prints the status and the server's `detail`, with a hint for the common mistakes."""
    message = f"{request.method} {request.url} answered {status} {reason}: {describe_detail(body)}"
    if status == 405 and not explicit_method:
        message += " (set the method with --method, e.g. --method POST, or send a body with --json '{}')"
    elif status == 404:
        message += " (list the chute's cords with `chutes cords REF`)"
    print_error(message)
    trace = error_traceback(body)
    if trace:
        sys.stderr.write(trace if trace.endswith("\n") else trace + "\n")

"""The request head sent upstream: end-to-end headers kept, hop-by-hop ones dropped."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any
from urllib.parse import quote

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Request headers the proxy sets itself; `expect` because the ASGI server already answered it.
REPLACED = frozenset({b"content-length", b"expect", b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto"})
# Connection tokens that name no header (nothing to drop beyond the hop-by-hop set).
_PLAIN_TOKENS = frozenset({b"keep-alive", b"close", b""})


class RequestHead:
    """The upstream request line and headers, without the framing header and final blank line."""

    __slots__ = ("parts", "content_length", "chunked")

    def __init__(self, parts: list[bytes], content_length: bytes | None, chunked: bool) -> None:
        self.parts = parts
        self.content_length = content_length
        self.chunked = chunked

    def __repr__(self) -> str:
        return f"RequestHead({b''.join(self.parts)[:60]!r}, content_length={self.content_length!r})"

    @property
    def has_body(self) -> bool:
        return self.content_length is not None or self.chunked

    def render(self, framing: bytes) -> bytes:
        """Returns the whole head, ending with `framing` (e.g. b'content-length: 3\\r\\n')."""
        return b"".join(self.parts) + framing + b"\r\n"


def encode_target(scope: MutableMapping[str, Any], path: str | None) -> bytes:
    """Takes the scope and an optional upstream path, and returns the request target."""
    if path is not None:
        target = quote(path, safe="/%:@!$&'()*+,;=~").encode("ascii")
    else:
        target = scope.get("raw_path") or quote(scope["path"]).encode("ascii")
    query = scope.get("query_string")
    return target + b"?" + query if query else target


def build_request_head(
    scope: MutableMapping[str, Any],
    *,
    host: str,
    port: int,
    path: str | None,
    extra_headers: Iterable[tuple[bytes, bytes]] | None,
    dropped: frozenset[bytes] = frozenset(),
) -> RequestHead:
    """Takes an ASGI HTTP scope, and returns the head to send to host:port."""
    parts = [scope["method"].encode("ascii"), b" ", encode_target(scope, path), b" HTTP/1.1\r\n"]
    content_length = forwarded_for = host_value = connection = None
    chunked = False
    for name, value in scope["headers"]:
        if name in HOP_BY_HOP or name.startswith(b"proxy-"):
            if name == b"connection":
                connection = value
            elif name == b"transfer-encoding":
                chunked = True
            continue
        if name in REPLACED:
            if name == b"content-length":
                content_length = value
            elif name == b"x-forwarded-for":
                forwarded_for = value
            continue
        if name in dropped:
            continue
        if name == b"host":
            host_value = value
        parts += (name, b": ", value, b"\r\n")
    if connection is not None and not dropped:
        listed = frozenset(token.strip().lower() for token in connection.split(b","))
        if not listed <= _PLAIN_TOKENS:
            return build_request_head(
                scope, host=host, port=port, path=path, extra_headers=extra_headers, dropped=listed
            )
    if host_value is None:
        host_value = f"{host}:{port}".encode("ascii")
        parts += (b"host: ", host_value, b"\r\n")
    client = scope.get("client")
    if client:
        address = client[0].encode("ascii")
        if not forwarded_for:
            forwarded_for = address
        elif forwarded_for.rpartition(b",")[2].strip() != address:
            # Unequal unless the server already took the client from this header (uvicorn's proxy_headers).
            forwarded_for += b", " + address
    if forwarded_for:
        parts += (b"x-forwarded-for: ", forwarded_for, b"\r\n")
    scheme = scope.get("scheme", "http").encode("ascii")
    parts += (b"x-forwarded-host: ", host_value, b"\r\nx-forwarded-proto: ", scheme, b"\r\n")
    if extra_headers:
        for name, value in extra_headers:
            parts += (name, b": ", value, b"\r\n")
    if chunked:
        content_length = None  # RFC 9112 6.3: Transfer-Encoding overrides Content-Length
    return RequestHead(parts, content_length, chunked)

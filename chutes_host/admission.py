"""Admission to the control API: the key is checked before any body is read, and bodies are bounded.

FastAPI reads (and validates) a request's body before it runs the dependency that checks the key,
so without this an anonymous client could make the host hold any body it sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from chutes.endpoint import replay_body
from chutes.responses import send_json
from chutes_host.auth import FailureLimiter, KeyCache, check_key, read_key

USER_SCOPE_KEY = "chutes.user"
SMALL_BODY = 64 * 1024
BODY_TIMEOUT = 30.0
CHALLENGE = (b"www-authenticate", b"Bearer")
CLOSE = (b"connection", b"close")  # the unread body must not be taken for the next request


class ControlAdmission:
    """Plain ASGI middleware for `prefix`: 401/429 before the body, then 413/408 for a body over its
    limit or too slow; the caller's (user id, user name) goes into the scope under USER_SCOPE_KEY.

    Streamed uploads (`streamed(method, path)` true) are bounded by the endpoint that reads them;
    every other body is read here, up to SMALL_BODY bytes.
    """

    def __init__(
        self,
        app: Any,
        *,
        prefix: str,
        open_paths: frozenset[str],
        keys: KeyCache,
        failures: FailureLimiter,
        streamed: Callable[[str, str], bool],
    ) -> None:
        self.app = app
        self.prefix = prefix
        self.open_paths = open_paths
        self.keys = keys
        self.failures = failures
        self.streamed = streamed

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(self.prefix) or path in self.open_paths:
            return await self.app(scope, receive, send)
        key = read_key(scope["headers"])
        if key is None:
            detail = "missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`"
            return await send_json(send, 401, {"detail": detail}, [CHALLENGE, CLOSE])
        client = scope["client"][0] if scope.get("client") else ""
        found = await check_key(self.keys, self.failures, key, client)
        if isinstance(found, float):
            detail = "too many requests with unknown API keys from this address; retry later"
            retry = (b"retry-after", str(int(found) + 1).encode())
            return await send_json(send, 429, {"detail": detail}, [retry, CLOSE])
        if found is None:
            detail = (
                "unknown or revoked API key; ask the host's admin for one (`chutes host users add` / `keys create`)"
            )
            return await send_json(send, 401, {"detail": detail}, [CHALLENGE, CLOSE])
        scope = dict(scope)
        scope[USER_SCOPE_KEY] = found
        if self.streamed(scope["method"], path):
            return await self.app(scope, receive, send)
        refusal = declared_length_refusal(scope["headers"], SMALL_BODY)
        if refusal is not None:
            return await send_json(send, *refusal)
        try:
            body = await read_small_body(receive, SMALL_BODY)
        except BodyRefused as exc:
            return await send_json(send, exc.status, {"detail": str(exc)}, [CLOSE])
        if body is None:  # the client went away
            return None
        return await self.app(scope, replay_body(body, receive), send)


class BodyRefused(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def declared_length_refusal(headers: list[tuple[bytes, bytes]], limit: int) -> tuple[int, dict, list] | None:
    """Returns the 400/413 answer for a Content-Length that is malformed or over `limit`, else None."""
    for name, value in headers:
        if name != b"content-length":
            continue
        if not value.isdigit():
            return 400, {"detail": "Content-Length header must be a whole number of bytes"}, [CLOSE]
        if int(value) > limit:
            return 413, {"detail": too_large(limit)}, [CLOSE]
    return None


def too_large(limit: int) -> str:
    shown = f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} bytes"
    return f"the request body is larger than this endpoint's limit of {shown}; send a smaller one"


async def read_small_body(receive: Callable, limit: int) -> bytes | None:
    """Returns the whole body (None when the client disconnected); raises BodyRefused over `limit`
    bytes (413) or when it is not all in within BODY_TIMEOUT seconds (408)."""
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise BodyRefused(too_large(limit), 413)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        raise BodyRefused(f"the request body did not arrive within {BODY_TIMEOUT:g} s", 408) from None

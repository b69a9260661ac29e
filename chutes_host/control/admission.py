"""Admission to the control API: the key is checked before any of the body is read.

FastAPI reads (and validates) a request's body before it runs the dependency that checks the key,
so without this an anonymous client could make the host hold any body it sends. How much body a
request may then send, and how fast, is the host's body budget (chutes_host.gateway.budget).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chutes.responses import send_json
from chutes_host.control.auth import FailureLimiter, KeyCache, check_key, read_key

USER_SCOPE_KEY = "chutes.user"
CHALLENGE = (b"www-authenticate", b"Bearer")
CLOSE = (b"connection", b"close")  # the unread body must not be taken for the next request


class ControlAdmission:
    """Plain ASGI middleware for `prefix`: 401/429 before any of the body is read; the caller's
    (user id, user name) goes into the scope under USER_SCOPE_KEY."""

    def __init__(
        self,
        app: Any,
        *,
        prefix: str,
        open_paths: frozenset[str],
        keys: KeyCache,
        failures: FailureLimiter,
    ) -> None:
        self.app = app
        self.prefix = prefix
        self.open_paths = open_paths
        self.keys = keys
        self.failures = failures

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
        return await self.app(scope, receive, send)

"""Budgets of request bodies: every request to the host gets a byte limit and a time limit, applied as
its body streams in, whatever route it is for (control API, dashboard, gateway, docs, job uploads).

The checks that must come before a body is read (an API key, a dashboard session) run inside this
middleware and send their refusal without calling `receive`; the budget is applied only when the app
asks for the body, so an anonymous request is refused 401 rather than 413.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chutes.protocol import SEND_WHOLE
from chutes.responses import send_json

KiB = 1024
MiB = 1024 * KiB
# Past its `seconds`, a body must keep arriving at this rate on average: a 200 MiB upload may take as
# long as it needs at a usable speed, a trickle of bytes is cut off.
MIN_RATE = 64 * KiB
CLOSE = (b"connection", b"close")  # the unread body must not be taken for the next request
DISCONNECT = {"type": "http.disconnect"}


@dataclass(frozen=True, slots=True)
class Budget:
    """At most `bytes` of body, all in within `seconds` plus one second per MIN_RATE bytes received."""

    bytes: int
    seconds: float

    def describe(self) -> str:
        return f"{self.bytes // MiB} MiB" if self.bytes % MiB == 0 else f"{self.bytes // KiB} KiB"


SMALL = Budget(64 * KiB, 30.0)  # every route not named otherwise: JSON bodies of the API and dashboard


class BodyBudget:
    """Plain ASGI middleware: `budget_of(scope)` names each HTTP request's Budget; a body over its bytes
    (declared or sent) is answered 413, one not in within its time 408, and the app then sees the
    client disconnect and may send nothing more. After a response has started, the app just sees
    the disconnect (the server then closes the connection)."""

    def __init__(self, app: Any, *, budget_of: Callable[[dict], Budget]) -> None:
        self.app = app
        self.budget_of = budget_of

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        budget = self.budget_of(scope)
        loop = asyncio.get_running_loop()
        started_at = loop.time()
        received = 0
        body_done = False
        first = True
        response_started = False
        refused = False

        async def refuse(status: int, detail: str) -> dict:
            nonlocal refused
            refused = True
            if not response_started:
                await send_json(send, status, {"detail": detail}, [CLOSE])
            return DISCONNECT

        async def receive_within() -> dict:
            nonlocal received, body_done, first
            if refused:
                return DISCONNECT
            if body_done:
                return await receive()  # the body is in: what follows is the wait for a disconnect
            if first:
                first = False
                declared = declared_length(scope["headers"])
                if declared is not None and declared > budget.bytes:
                    return await refuse(413, too_large(budget))
            remaining = started_at + budget.seconds + received / MIN_RATE - loop.time()
            try:
                async with asyncio.timeout(max(remaining, 0)):
                    message = await receive()
            except TimeoutError:
                return await refuse(408, too_slow(budget))
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > budget.bytes:
                    return await refuse(413, too_large(budget))
                body_done = not message.get("more_body", False)
            return message

        async def send_unless_refused(message: dict) -> None:
            nonlocal response_started
            if refused:
                return
            response_started = True
            await send(message)

        extensions = scope.get("extensions")
        whole = extensions.get(SEND_WHOLE) if extensions else None
        if whole is not None:

            async def send_whole_unless_refused(start: dict, body: dict) -> None:
                nonlocal response_started
                if refused:
                    return
                response_started = True
                await whole(start, body)

            scope = dict(scope, extensions={**extensions, SEND_WHOLE: send_whole_unless_refused})
        try:
            await self.app(scope, receive_within, send_unless_refused)
        except Exception:
            if not refused:
                raise
            # the app failed on the disconnect it was given; the client has its answer already


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """Returns the request's Content-Length (None when absent; the server refuses malformed ones)."""
    for name, value in headers:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


def too_large(budget: Budget) -> str:
    return f"the request body is larger than this route's limit of {budget.describe()}; send a smaller one"


def too_slow(budget: Budget) -> str:
    return (
        f"the request body did not arrive in time (this route allows {budget.seconds:g} s, plus 1 s for "
        f"every {MIN_RATE // KiB} KiB received); send it faster or in smaller requests"
    )

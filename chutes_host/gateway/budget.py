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
        request = BudgetedRequest(self.budget_of(scope), scope["headers"], receive, send)
        extensions = scope.get("extensions")
        whole = extensions.get(SEND_WHOLE) if extensions else None
        if whole is not None:
            request.whole = whole
            scope = dict(scope, extensions={**extensions, SEND_WHOLE: request.send_whole})
        try:
            await self.app(scope, request.receive, request.send)
        except Exception:
            if not request.refused:
                raise
            # the app failed on the disconnect it was given; the client has its answer already
        finally:
            request.stop_timer()


class BudgetedRequest:
    """One request's body under its Budget: `receive` counts and times it, `send` and `send_whole` pass the
    app's answer on unless the budget already answered. One timer per body, re-armed only when it fires
    early (the deadline moves as bytes arrive), cancels a `receive` that waits past the deadline."""

    __slots__ = (
        "budget",
        "headers",
        "inner_receive",
        "inner_send",
        "whole",
        "loop",
        "started_at",
        "received",
        "first",
        "body_done",
        "response_started",
        "refused",
        "timer",
        "waiting",
        "expired",
    )

    def __init__(self, budget: Budget, headers: list, receive: Callable, send: Callable) -> None:
        self.budget = budget
        self.headers = headers
        self.inner_receive = receive
        self.inner_send = send
        self.whole: Callable | None = None
        self.loop = asyncio.get_running_loop()
        self.started_at = self.loop.time()
        self.received = 0
        self.first = True
        self.body_done = False
        self.response_started = False
        self.refused = False
        self.timer: asyncio.TimerHandle | None = None
        self.waiting: asyncio.Task | None = None
        self.expired = False

    def deadline(self) -> float:
        return self.started_at + self.budget.seconds + self.received / MIN_RATE

    async def receive(self) -> dict:
        if self.refused:
            return DISCONNECT
        if self.body_done:
            return await self.inner_receive()  # the body is in: what follows is the wait for a disconnect
        budget = self.budget
        if self.first:
            self.first = False
            declared = declared_length(self.headers)
            if declared is not None and declared > budget.bytes:
                return await self.refuse(413, too_large(budget))
        if self.loop.time() >= self.deadline():
            return await self.refuse(408, too_slow(budget))
        if self.timer is None:
            self.timer = self.loop.call_at(self.deadline(), self.timed_out)
        self.waiting = asyncio.current_task()
        try:
            message = await self.inner_receive()
        except asyncio.CancelledError:
            if not self.expired:
                raise
            self.waiting.uncancel()
            return await self.refuse(408, too_slow(budget))
        finally:
            self.waiting = None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > budget.bytes:
                return await self.refuse(413, too_large(budget))
            if not message.get("more_body", False):
                self.body_done = True
                self.stop_timer()
        return message

    def timed_out(self) -> None:
        self.timer = None
        if self.body_done or self.refused:
            return
        due = self.deadline()
        if self.loop.time() < due:  # bytes came since it was set: the deadline moved
            self.timer = self.loop.call_at(due, self.timed_out)
        elif self.waiting is not None:
            self.expired = True
            self.waiting.cancel()
        # else the app is not waiting for the body now: its next receive refuses

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    async def refuse(self, status: int, detail: str) -> dict:
        self.refused = True
        self.stop_timer()
        if not self.response_started:
            await send_json(self.inner_send, status, {"detail": detail}, [CLOSE])
        return DISCONNECT

    async def send(self, message: dict) -> None:
        if self.refused:
            return
        self.response_started = True
        await self.inner_send(message)

    async def send_whole(self, start: dict, body: dict) -> None:
        if self.refused:
            return
        self.response_started = True
        await self.whole(start, body)


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

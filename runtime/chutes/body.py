"""Reading request bodies within a size limit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException

DEFAULT_MAX_BODY_SIZE = 100 * 1024 * 1024
# A body that sends nothing for this long is refused (408): a stalled client must not hold a
# connection, and (for streamed passthrough bodies) a concurrency slot, forever.
BODY_IDLE_TIMEOUT = 30.0


class ClientDisconnect(Exception):
    """The client went away before its request body was complete."""


def too_large(limit: int) -> HTTPException:
    return HTTPException(
        413,
        f"request body is larger than this chute's limit of {limit} bytes; "
        "send a smaller body (or raise max_body_size on the Chute)",
    )


def body_timeout() -> HTTPException:
    return HTTPException(
        408, f"the request body stalled: nothing arrived for {BODY_IDLE_TIMEOUT:g} s; send it without pauses"
    )


async def receive_within(receive: Callable[[], Awaitable[dict]], timeout: float) -> dict:
    """Returns the next ASGI message; raises the 408 HTTPException when none comes within `timeout` s."""
    try:
        async with asyncio.timeout(timeout):
            return await receive()
    except TimeoutError:
        raise body_timeout() from None


async def read_body(receive, limit: int) -> bytes:
    """Takes a request's receive, and returns its whole body; 413 as soon as it passes `limit` bytes,
    408 when a part of it takes longer than BODY_IDLE_TIMEOUT seconds to come."""
    message = await receive_within(receive, BODY_IDLE_TIMEOUT)
    if message["type"] == "http.disconnect":
        raise ClientDisconnect()
    body = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise too_large(limit)
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive_within(receive, BODY_IDLE_TIMEOUT)
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
